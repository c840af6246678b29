// Test entry point: every test in the package must leave no goroutine behind.
package scheduler

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests. Run's
// reader goroutine may outlive Run only while Source.Next blocks; the tests
// here unblock every Source they start before they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
