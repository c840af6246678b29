// Test entry point: every test in the package must leave no goroutine behind.
package objectstore

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every store
// a test opens is closed, which waits for its spiller.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
