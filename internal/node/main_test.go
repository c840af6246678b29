// Test entry point: every test in the package must leave no goroutine behind.
package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every node
// a test runs has returned from Run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
