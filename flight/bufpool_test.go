package flight

import "testing"

func TestTieredPool(t *testing.T) {
	for _, tc := range []struct {
		n, tier int
		kept    bool
	}{{0, 8, true}, {1, 8, true}, {256, 8, true}, {257, 9, true}, {1 << 20, 20, true}, {1<<20 + 1, 21, true},
		{64 << 20, 26, true}, {64<<20 + 1, 27, false}} {
		if tier, kept := tierOf(tc.n); tier != tc.tier || kept != tc.kept {
			t.Errorf("tierOf(%d) = %d, %v; want %d, %v", tc.n, tier, kept, tc.tier, tc.kept)
		}
	}
	p := &tieredPool{}
	for _, n := range []int{0, 100, 300, 70_000, 1 << 20, 65 << 20} {
		b := p.Get(n)
		if len(*b) != n || cap(*b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		if tier, kept := tierOf(n); kept && cap(*b) != 1<<tier {
			t.Fatalf("Get(%d): cap %d, want its tier's %d", n, cap(*b), 1<<tier)
		}
		p.Put(b)
	}
	odd := make([]byte, 1000) // not a tier's capacity: dropped, never handed out
	p.Put(&odd)
	for range 20 {
		if b := p.Get(1000); cap(*b) != 1024 {
			t.Fatalf("Get(1000) gave a buffer of capacity %d", cap(*b))
		}
	}
}
