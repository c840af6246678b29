"""A pyarrow (C++) Flight echo server: DoExchange writes every batch it reads straight back.

The transport baseline of bench/run_all.py: same client, same batches, no UDF work,
served by Arrow's own C++ Flight server. Prints "ready <location>" once serving.

    python bench/flight_echo.py grpc://127.0.0.1:0
    python bench/flight_echo.py grpc+unix:///tmp/echo.sock
"""

import sys

import pyarrow.flight as fl


class EchoServer(fl.FlightServerBase):
    def do_exchange(self, context, descriptor, reader, writer):
        started = False
        for chunk in reader:
            if chunk.data is None:
                continue
            if not started:
                writer.begin(chunk.data.schema)
                started = True
            writer.write_batch(chunk.data)
        if not started and reader.schema is not None:
            writer.begin(reader.schema)


def main():
    loc = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:0"
    server = EchoServer(loc)
    if loc.startswith("grpc+unix"):
        print(f"ready {loc}", flush=True)
    else:
        host = loc.split("://", 1)[1].rsplit(":", 1)[0]
        print(f"ready grpc://{host}:{server.port}", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
