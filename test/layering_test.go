// The import direction of the module's own packages, checked against a
// table: a new upward import or a circle fails the build.
package test

import (
	"bufio"
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/quiver-udf/quiver/"

// allowed lists, for every package of the module, the module packages it
// may import directly. A package missing here fails the test: place it in
// the layers before it lands. The direction is the design's:
// cmd -> internal/node -> flight -> scheduler -> udf, objectstore -> leaves.
var allowed = map[string][]string{
	"cmd/quiver":         {"flight", "internal/dial", "internal/loadtest", "internal/node", "internal/record", "internal/rundir", "objectstore"},
	"internal/node":      {"cluster", "flight", "internal/metrics", "internal/record", "objectstore", "scheduler", "udf"},
	"internal/metrics":   {"flight", "objectstore"},
	"internal/loadtest":  {"flight", "internal/dial", "internal/record", "internal/reference"},
	"flight":             {"scheduler", "udf", "objectstore", "internal/record", "internal/ipccheck"},
	"cluster":            {},
	"scheduler":          {"udf", "internal/arrowio"},
	"udf":                {"internal/ipccheck"},
	"objectstore":        {"internal/arrowio", "internal/ipccheck"},
	"internal/record":    {"internal/arrowio"},
	"internal/arrowio":   {},
	"internal/dial":      {},
	"internal/reference": {},
	"internal/ipccheck":  {},
	"internal/rundir":    {},
	"internal/scenario":  {},
	"internal/shmtest":   {},
	"internal/testpy":    {},
	"internal/placesim":  {"scheduler"},
	"test":               {},
}

// transport lists packages that must not depend on gRPC or Flight: below
// the transport, nothing speaks the wire.
var transport = []string{"scheduler", "udf", "objectstore", "internal/ipccheck", "internal/arrowio"}

// goList runs go list over the module and returns each package's (module-
// relative) name mapped to the values of format, split on spaces.
func goList(t *testing.T, format string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|"+format, "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	res := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, vals, _ := strings.Cut(sc.Text(), "|")
		res[strings.TrimPrefix(path, module)] = strings.Fields(vals)
	}
	return res
}

func TestImportsPointOneWay(t *testing.T) {
	pkgs := goList(t, `{{join .Imports " "}}`)
	if len(pkgs) < 8 {
		t.Fatalf("go list found %d packages: %v", len(pkgs), pkgs)
	}
	for pkg, imports := range pkgs {
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the layering table of test/layering_test.go: add it with the packages it may import", pkg)
			continue
		}
		for _, imp := range imports {
			dep, own := strings.CutPrefix(imp, module)
			if own && !contains(ok, dep) {
				t.Errorf("%s imports %s, which its layer may not (allowed: %v)", pkg, dep, ok)
			}
		}
	}
}

// TestTableHasNoCircle keeps the table itself a DAG, so that allowing an
// import cannot quietly allow a circle.
func TestTableHasNoCircle(t *testing.T) {
	state := map[string]int{} // 0 unseen, 1 on the path, 2 done
	var visit func(p string, path []string)
	visit = func(p string, path []string) {
		switch state[p] {
		case 1:
			t.Fatalf("the layering table has a circle: %s -> %s", strings.Join(path, " -> "), p)
		case 2:
			return
		}
		state[p] = 1
		for _, d := range allowed[p] {
			visit(d, append(path, p))
		}
		state[p] = 2
	}
	names := make([]string, 0, len(allowed))
	for p := range allowed {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		visit(p, nil)
	}
}

func TestNothingBelowTheTransportSpeaksFlight(t *testing.T) {
	deps := goList(t, `{{join .Deps " "}}`)
	for _, pkg := range transport {
		d, ok := deps[pkg]
		if !ok {
			continue // not (yet) in the module
		}
		for _, imp := range d {
			if strings.HasPrefix(imp, "google.golang.org/grpc") || strings.HasSuffix(imp, "/arrow/flight") ||
				strings.Contains(imp, "/arrow/flight/") {
				t.Errorf("%s depends on %s: only flight/ (and the CLI above it) may speak gRPC", pkg, imp)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
