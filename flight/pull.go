// The Puller: objects that another node owns, read here by pulling them
// from their owner once and serving a cached copy, checked with the owner
// before each use.
package flight

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/objectstore"
)

// ErrOwnerLost: the node that owns an object is gone (no live member has
// its owner tag: it died, left, or restarted) or cannot be reached, so the
// object is lost. It is reported as NOT_FOUND, like an object released.
var ErrOwnerLost = errors.New("flight: the object's owner node is lost")

// Defaults of PullConfig.
const (
	DefaultCopyIdle     = 5 * time.Minute
	DefaultCheckTimeout = 5 * time.Second
)

// ownerWatch is how often a pull in flight checks that its owner is
// still a live member.
const ownerWatch = 100 * time.Millisecond

// PullConfig configures a Puller.
type PullConfig struct {
	// Owner returns the Flight address (host:port) of the live member
	// whose owner tag is tag, or false when none is alive (declared dead,
	// left, never known). Required; called often, so it must be cheap.
	Owner func(tag string) (addr string, ok bool)
	// CopyBytes bounds the bytes of the copies kept (least recently used
	// dropped first); zero means the store's memory bound. Copies spill
	// like any object: this bounds what they take in the store, disk
	// included.
	CopyBytes int64
	// CopyIdle: a copy unused this long is dropped; zero means 5 minutes.
	CopyIdle time.Duration
	// CheckTimeout bounds the check with the owner (object_stat) before
	// a copy is served; zero means 5 s. An owner that does not answer in
	// time is taken as lost.
	CheckTimeout time.Duration
}

// Puller reads objects that other nodes own into this node's store. The
// first reader of an object pulls it from its owner (concurrent readers
// share that one transfer) and it is kept as a copy; every later read
// first asks the owner whether it still holds the object (object_stat):
// a copy is never served after its owner released it or was lost. It is
// safe for concurrent use; Close stops it and drops the copies.
type Puller struct {
	cfg    PullConfig
	store  *objectstore.Store
	peers  *PeerClient
	log    *zap.Logger
	group  singleflight.Group
	copies *copies
	now    func() time.Time

	ctx    context.Context // pulls run under it: they outlive the reader that started them
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewPuller returns a puller that keeps its copies in store and reads
// from owners through peers; neither is its to close.
func NewPuller(cfg PullConfig, store *objectstore.Store, peers *PeerClient, log *zap.Logger) (*Puller, error) {
	if cfg.Owner == nil || store == nil || peers == nil {
		return nil, errors.New("flight: a Puller needs PullConfig.Owner, a store and a peer client")
	}
	if cfg.CopyBytes < 0 || cfg.CopyIdle < 0 || cfg.CheckTimeout < 0 {
		return nil, errors.New("flight: negative field in PullConfig")
	}
	if cfg.CopyBytes == 0 {
		cfg.CopyBytes = store.Limit()
	}
	if cfg.CopyIdle == 0 {
		cfg.CopyIdle = DefaultCopyIdle
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Puller{cfg: cfg, store: store, peers: peers, log: log, copies: newCopies(cfg.CopyBytes, cfg.CopyIdle),
		now: time.Now, ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.sweeper()
	return p, nil
}

// Close cancels the pulls in flight, waits for the puller's goroutine and
// drops every copy (readers keep theirs until they release them).
func (p *Puller) Close() {
	p.cancel()
	p.wg.Wait()
	p.copies.sweep(p.now(), true)
}

// Remote reports whether id names another node as its owner: such an
// object is read through Acquire unless a client published it here.
func (p *Puller) Remote(id objectstore.ID) bool {
	o := id.Owner()
	return o != "" && o != p.store.Owner()
}

// Acquire returns a reference to this node's copy of id, which another
// node owns, pulling it first if need be. It fails with
// objectstore.ErrNotFound when the owner released it, ErrOwnerLost (also
// objectstore.ErrNotFound) when the owner is gone, ErrOverCapacity when
// the copy does not fit here, or ctx's error.
func (p *Puller) Acquire(ctx context.Context, id objectstore.ID) (*objectstore.Handle, error) {
	owner := id.Owner()
	for try := 0; ; try++ {
		addr, ok := p.cfg.Owner(owner)
		if !ok {
			p.copies.drop(id)
			return nil, lost(id, owner, "no live member has its owner tag (it died, left or restarted)")
		}
		if h := p.copies.get(id, p.now()); h != nil {
			if err := p.check(ctx, addr, id); err != nil {
				h.Release()
				return nil, err
			}
			return h, nil
		}
		if try > 0 { // pulled, then dropped before this reader took it: only under heavy eviction
			return nil, fmt.Errorf("%w: the copy of %s was dropped as soon as it was pulled: raise the store's memory", objectstore.ErrOverCapacity, id)
		}
		ch := p.group.DoChan(string(id), func() (any, error) { return nil, p.pull(addr, id) })
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// check asks the owner whether it still holds id; the copy is dropped
// when it does not, or cannot say.
func (p *Puller) check(ctx context.Context, addr string, id objectstore.ID) error {
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CheckTimeout)
	defer cancel()
	_, err := p.peers.StatObject(cctx, addr, id)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = p.classify(id, addr, err)
	p.copies.drop(id)
	return err
}

// pull reads id from its owner at addr into a copy, under the puller's
// context (not a reader's: readers that give up leave it to the others),
// cut off when the owner stops being a live member.
func (p *Puller) pull(addr string, id objectstore.ID) error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	var ownerGone bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(ownerWatch)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, ok := p.cfg.Owner(id.Owner()); !ok {
				ownerGone = true
				cancel()
				return
			}
		}
	}()
	start := p.now()
	h, err := p.peers.PullObject(ctx, addr, id, p.store)
	cancel()
	<-watched
	if err != nil {
		if ownerGone {
			return lost(id, id.Owner(), "its owner was declared dead during the pull")
		}
		if p.ctx.Err() != nil {
			return objectstore.ErrClosed
		}
		return p.classify(id, addr, err)
	}
	p.log.Debug("pulled an object", zap.String("id", string(id)), zap.String("owner", addr),
		zap.Int64("bytes", h.Size()), zap.Duration("took", p.now().Sub(start)))
	p.copies.add(h, p.now())
	return nil
}

// classify turns an owner's failure into the reader's: NOT_FOUND is a
// released object, RESOURCE_EXHAUSTED and this store's own errors stay as
// they are, anything else means the owner is lost.
func (p *Puller) classify(id objectstore.ID, addr string, err error) error {
	if errors.Is(err, objectstore.ErrOverCapacity) || errors.Is(err, objectstore.ErrClosed) {
		return err
	}
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%w: %q: its owner at %s no longer holds it (released)", objectstore.ErrNotFound, string(id), addr)
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: the owner at %s of %s: %v", objectstore.ErrOverCapacity, addr, id, err)
	}
	return lost(id, id.Owner(), fmt.Sprintf("its owner at %s cannot be reached: %v", addr, err))
}

// lost is ErrOwnerLost for id, which also reads as objectstore.ErrNotFound.
func lost(id objectstore.ID, owner, why string) error {
	return fmt.Errorf("%w (%w): object %q of owner %s: %s", ErrOwnerLost, objectstore.ErrNotFound, string(id), owner, why)
}

// sweeper drops idle copies until Close.
func (p *Puller) sweeper() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.cfg.CopyIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.copies.sweep(p.now(), false)
		}
	}
}
