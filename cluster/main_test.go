// Test entry point: every test in the package must leave no goroutine behind.
package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every
// Cluster a test starts is closed, memberlist's goroutines with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
