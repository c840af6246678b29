// GetFlightInfo and ListFlights: the function catalog, in the layout of the
// RisingWave and Databend external-UDF callers.
package flight

import (
	"context"

	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/quiver-udf/quiver/udf"
)

// MetaInputCount is the schema metadata key giving the number of inputs.
const MetaInputCount = "x-databend-udf-input-count"

// GetFlightInfo describes one function: its input fields then its output
// field (a table function's row-index field first), total_records = the
// number of inputs.
func (s *Server) GetFlightInfo(_ context.Context, d *flight.FlightDescriptor) (info *flight.FlightInfo, err error) {
	defer func() { err = s.finish("GetFlightInfo", err) }()
	name, err := functionName(d)
	if err != nil {
		return nil, err
	}
	fn, err := s.cat.Lookup(name)
	if err != nil {
		return nil, err
	}
	return s.flightInfo(fn), nil
}

// ListFlights sends one FlightInfo per function, sorted by name.
func (s *Server) ListFlights(_ *flight.Criteria, stream flight.FlightService_ListFlightsServer) (err error) {
	defer func() { err = s.finish("ListFlights", err) }()
	for _, fn := range s.cat.List() {
		if err := stream.Send(s.flightInfo(fn)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) flightInfo(fn udf.Func) *flight.FlightInfo {
	sig := fn.Signature()
	fields := append([]arrow.Field{}, sig.Args...)
	if udf.AsTable(fn) != nil { // RisingWave's layout: the row index before the values
		fields = append(fields, arrow.Field{Name: udf.TableRowField, Type: arrow.PrimitiveTypes.Int32})
	}
	fields = append(fields, sig.Result)
	md := arrow.NewMetadata(
		[]string{MetaInputCount, "quiver-doc"},
		[]string{strconv.Itoa(len(sig.Args)), sig.Doc},
	)
	schema := arrow.NewSchema(fields, &md)
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(schema, s.cfg.Mem),
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{fn.Name()}},
		TotalRecords:     int64(len(sig.Args)),
		TotalBytes:       -1,
	}
}
