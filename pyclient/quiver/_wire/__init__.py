"""The wire layer: everything that talks to a node, and nothing above it.

    address   where a node is: run directory, default socket, resolve_address
    conn      Connection: one FlightClient with auth and call options, calls,
              actions and the session; shared(): this process's one connection
              per (address, token, pid)
    tablecall a call of a table function: output batches with a row-index column
    session   the long-lived session stream for small requests
    shm       large Arrow objects through the node's shared-memory directory
    local     a node for this machine, started on demand (what connect() does)

Modules here import only quiver.errors and each other; the layers above
(objects, tasks, lineage, the Client facade, accelerate) hold Connections.
"""
