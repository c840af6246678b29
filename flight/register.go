// The register and drop actions: Python functions into the catalog.
package flight

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/udf"
)

// Actions that change the catalog.
const (
	ActionRegister = "register" // body: u32 LE J | J bytes JSON {name, returns, args?} | blob; result JSON Registered
	ActionDrop     = "drop"     // body: the function name; result empty
)

// maxRegisterHeader bounds the JSON part of a register body.
const maxRegisterHeader = 1 << 20

// Registered is the result of the register action.
type Registered struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Replaced bool   `json:"replaced"`
}

// registration is a parsed register body.
type registration struct {
	name  string
	ret   arrow.DataType
	args  []arrow.Field // nil: not declared
	blob  []byte
	table bool // a table function (docs/protocol.md, "Table functions")
	conc  int  // rows a worker runs at once; 0: not given (1)
}

// parseRegister reads a register body (docs/worker-protocol.md).
func parseRegister(body []byte, mem memory.Allocator) (reg registration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: register: unreadable result schema: %v", errMalformed, r)
		}
	}()
	if len(body) < 4 {
		return reg, fmt.Errorf("%w: register body of %d bytes: want a 4-byte header length, JSON, then the function blob", errMalformed, len(body))
	}
	n := binary.LittleEndian.Uint32(body)
	if n > maxRegisterHeader || int64(n) > int64(len(body)-4) {
		return reg, fmt.Errorf("%w: register header length %d does not fit a body of %d bytes", errMalformed, n, len(body))
	}
	var h struct {
		Name    string  `json:"name"`
		Returns string  `json:"returns"`
		Args    *string `json:"args"`
		Table   bool    `json:"table"`
		Conc    int     `json:"concurrency"`
	}
	if err := json.Unmarshal(body[4:4+n], &h); err != nil {
		return reg, fmt.Errorf("%w: register header is not JSON {name, returns}: %v", errMalformed, err)
	}
	if h.Name == "" {
		return reg, fmt.Errorf("%w: register: no function name", errMalformed)
	}
	schema, err := parseSchema(h.Name, "returns", h.Returns, mem)
	if err != nil {
		return reg, err
	}
	if schema.NumFields() != 1 {
		return reg, fmt.Errorf("%w: register %s: the returns schema has %d fields, want 1", errMalformed, h.Name, schema.NumFields())
	}
	reg = registration{name: h.Name, ret: schema.Field(0).Type, blob: body[4+n:], table: h.Table, conc: h.Conc}
	if h.Args != nil {
		if reg.args, err = parseArgs(h.Name, *h.Args, mem); err != nil {
			return reg, err
		}
	}
	if len(reg.blob) == 0 {
		return reg, fmt.Errorf("%w: register %s: no function blob after the header", errMalformed, h.Name)
	}
	return reg, nil
}

// parseArgs reads the declared arguments: a base64 Arrow schema, one field
// per argument (none: a function of no arguments).
func parseArgs(name, b64 string, mem memory.Allocator) ([]arrow.Field, error) {
	schema, err := parseSchema(name, "args", b64, mem)
	if err != nil {
		return nil, err
	}
	args := make([]arrow.Field, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		f.Nullable = true // every argument may be null
		args = append(args, f)
	}
	return args, nil
}

// parseSchema reads the register header's field what of function name: a
// base64 Arrow schema.
func parseSchema(name, what, b64 string, mem memory.Allocator) (*arrow.Schema, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: register %s: %s is not base64: %v", errMalformed, name, what, err)
	}
	schema, err := flight.DeserializeSchema(raw, mem)
	if err != nil {
		return nil, fmt.Errorf("%w: register %s: %s is not an Arrow schema: %v", errMalformed, name, what, err)
	}
	return schema, nil
}

// register adds or replaces a Python function.
func (s *Server) register(body []byte) ([]byte, error) {
	fn, err := s.newPyFunc(body)
	if err != nil {
		return nil, err
	}
	replaced, err := s.cat.Put(fn)
	if err != nil {
		return nil, err
	}
	if replaced {
		s.log.Info("python function replaced", zap.String("name", fn.Name()), zap.String("id", fn.ID()))
	} else {
		s.log.Debug("python function registered", zap.String("name", fn.Name()), zap.String("id", fn.ID()))
	}
	return json.Marshal(Registered{Name: fn.Name(), ID: fn.ID(), Replaced: replaced})
}

// newPyFunc builds the Python function a register body describes.
func (s *Server) newPyFunc(body []byte) (*udf.PyFunc, error) {
	reg, err := parseRegister(body, s.cfg.Mem)
	if err != nil {
		return nil, err
	}
	newFn := udf.NewPyFunc
	if reg.table {
		newFn = udf.NewPyTableFunc
	}
	fn, err := newFn(reg.name, reg.blob, reg.ret, s.cfg.Workers)
	if err != nil {
		return nil, err
	}
	if reg.args != nil {
		fn.SetArgs(reg.args)
	}
	if reg.conc != 0 {
		if err := fn.SetConcurrency(reg.conc); err != nil {
			return nil, err
		}
	}
	return fn, nil
}
