// Test entry point: every test in the package must leave no goroutine behind.
package flight

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: servers,
// clients and calls must all be shut down by the tests that start them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
