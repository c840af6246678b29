// Tests of the task context header.
package flight

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/udf"
)

func TestTaskContextHeader(t *testing.T) {
	cases := []struct {
		name, value string
		ok          bool
	}{
		{"absent", "", true},
		{"object", `{"partitionId": 3, "localProperties": {"k": "v"}}`, true},
		{"empty object", `{}`, true},
		{"array", `[1, 2]`, false},
		{"null", `null`, false},
		{"not json", `partition 3`, false},
		{"truncated", `{"partitionId": 3`, false},
		{"too large", `{"k": "` + strings.Repeat("x", maxTaskContext) + `"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := metadata.MD{}
			if tc.value != "" {
				md.Set(HeaderTaskContext, tc.value)
			}
			o, err := callOptions(metadata.NewIncomingContext(context.Background(), md))
			if tc.ok {
				if err != nil || string(o.TaskContext) != tc.value {
					t.Fatalf("callOptions = %q, %v; want %q", o.TaskContext, err, tc.value)
				}
				return
			}
			if err == nil || codeOf(err) != codes.InvalidArgument || !errors.Is(err, udf.ErrInvalidArgument) {
				t.Fatalf("callOptions: %v, want InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), HeaderTaskContext) {
				t.Errorf("error %q does not name the header", err)
			}
		})
	}
}
