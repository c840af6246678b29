// The register body parser: good bodies, each kind of bad one, and fuzzing.
package flight

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func registerBody(t testing.TB, header any, blob []byte) []byte {
	j, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(j)))
	return append(append(b, j...), blob...)
}

func returnsOf(dt arrow.DataType) string {
	s := arrow.NewSchema([]arrow.Field{{Name: "result", Type: dt, Nullable: true}}, nil)
	return base64.StdEncoding.EncodeToString(flight.SerializeSchema(s, memory.DefaultAllocator))
}

func TestParseRegister(t *testing.T) {
	ret := arrow.ListOf(arrow.BinaryTypes.String)
	reg, err := parseRegister(registerBody(t, map[string]string{"name": "f", "returns": returnsOf(ret)}, []byte("blob")), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	if reg.name != "f" || string(reg.blob) != "blob" || !arrow.TypeEqual(reg.ret, ret) {
		t.Fatalf("got %+v", reg)
	}

	twoFields := base64.StdEncoding.EncodeToString(flight.SerializeSchema(arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64}, {Name: "b", Type: arrow.PrimitiveTypes.Int64}}, nil), memory.DefaultAllocator))
	ok := returnsOf(arrow.PrimitiveTypes.Float64)
	bad := map[string][]byte{
		"empty":             nil,
		"short":             {1, 0},
		"length past body":  binary.LittleEndian.AppendUint32(nil, 100),
		"not json":          append(binary.LittleEndian.AppendUint32(nil, 3), "{x}blob"...),
		"no name":           registerBody(t, map[string]string{"returns": ok}, []byte("b")),
		"returns not b64":   registerBody(t, map[string]string{"name": "f", "returns": "%%%"}, []byte("b")),
		"returns garbage":   registerBody(t, map[string]string{"name": "f", "returns": "AAAA"}, []byte("b")),
		"two result fields": registerBody(t, map[string]string{"name": "f", "returns": twoFields}, []byte("b")),
		"no blob":           registerBody(t, map[string]string{"name": "f", "returns": ok}, nil),
		"args not b64":      registerBody(t, map[string]string{"name": "f", "returns": ok, "args": "%%%"}, []byte("b")),
		"args garbage":      registerBody(t, map[string]string{"name": "f", "returns": ok, "args": "AAAA"}, []byte("b")),
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parseRegister(body, memory.DefaultAllocator); !errors.Is(err, errMalformed) {
				t.Fatalf("got %v, want errMalformed", err)
			}
		})
	}
}

// TestParseRegisterArgs: declared arguments are read by position, all
// nullable; none declared is nil, an empty schema a function of none.
func TestParseRegisterArgs(t *testing.T) {
	ok := returnsOf(arrow.PrimitiveTypes.Float64)
	args := base64.StdEncoding.EncodeToString(flight.SerializeSchema(arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float64}, {Name: "label", Type: arrow.BinaryTypes.String, Nullable: true}}, nil),
		memory.DefaultAllocator))
	none := base64.StdEncoding.EncodeToString(flight.SerializeSchema(arrow.NewSchema(nil, nil), memory.DefaultAllocator))
	for name, tc := range map[string]struct {
		header map[string]string
		want   []string
	}{
		"declared":     {map[string]string{"name": "f", "returns": ok, "args": args}, []string{"x:float64", "label:utf8"}},
		"not declared": {map[string]string{"name": "f", "returns": ok}, nil},
		"no arguments": {map[string]string{"name": "f", "returns": ok, "args": none}, []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			reg, err := parseRegister(registerBody(t, tc.header, []byte("blob")), memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			if (reg.args == nil) != (tc.want == nil) || len(reg.args) != len(tc.want) {
				t.Fatalf("args %v, want %v", reg.args, tc.want)
			}
			for i, f := range reg.args {
				if got := f.Name + ":" + f.Type.String(); got != tc.want[i] || !f.Nullable {
					t.Errorf("argument %d: %s (nullable %v), want %s, nullable", i, got, f.Nullable, tc.want[i])
				}
			}
		})
	}
}

// FuzzParseRegister: no body makes the parser panic; what it accepts is whole.
func FuzzParseRegister(f *testing.F) {
	f.Add(registerBody(f, map[string]string{"name": "f", "returns": returnsOf(arrow.PrimitiveTypes.Float64)}, []byte("blob")))
	f.Add([]byte{})
	f.Add([]byte{4, 0, 0, 0, '{', '}', 'x', 'y'})
	f.Fuzz(func(t *testing.T, body []byte) {
		reg, err := parseRegister(body, memory.DefaultAllocator)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error not classified as malformed: %v", err)
			}
			return
		}
		if reg.name == "" || reg.ret == nil || len(reg.blob) == 0 {
			t.Fatalf("accepted an incomplete registration: %+v", reg)
		}
	})
}
