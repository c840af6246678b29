"""The same-host lane (quiver._wire.lane) against a real node: which clients use it,
objects kept after a get and never returned once released (also when another process
releases them, racing the gets) or lost with a node that restarted, and what the
node does with a lane client that breaks the protocol."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import struct
import time

import pyarrow.flight as flight
import pytest

import quiver
from nodeproc import start_node, stop_node
from quiver._wire import lane


def wire(client) -> str:
    return type(client.connection.session()._wire).__name__


@pytest.fixture(scope="module")
def lane_node():
    n = start_node(["--workers", "1"])
    yield n
    stop_node(n)


def test_unix_clients_use_the_lane_tcp_clients_flight(lane_node, monkeypatch):
    with quiver.connect(lane_node.unix) as c:
        assert wire(c) == "LaneWire"
        assert c.submit(pow, 2, 10).result() == 1024
    with quiver.connect(lane_node.tcp) as c:
        assert wire(c) == "FlightWire"
        assert c.submit(pow, 2, 10).result() == 1024
    monkeypatch.setenv("QUIVER_LANE", "0")
    with quiver.connect(lane_node.unix) as c:
        assert wire(c) == "FlightWire"


def test_the_lane_action_answers_only_on_the_socket(lane_node):
    def ask(address):
        with flight.FlightClient(address) as fc:
            return json.loads(next(iter(fc.do_action(flight.Action("lane", b"")))).body.to_pybytes())
    on_socket = ask(lane_node.unix)
    assert on_socket["path"] == lane_node.unix.removeprefix("grpc+unix://") + ".lane"
    assert len(on_socket["key"]) == 32
    assert ask(lane_node.tcp) == {"path": ""}
    assert os.stat(on_socket["path"]).st_mode & 0o077 == 0  # user-only, like the Flight socket


def test_a_kept_object_is_served_until_released(lane_node):
    with quiver.connect(lane_node.unix) as c:
        ref = c.put({"a": [1, 2, 3]})
        assert c.get(ref) == {"a": [1, 2, 3]}  # from the node; kept
        stamps = c.connection.stamps()
        assert stamps is not None and stamps.lookup(ref.id) is not None
        got = c.get(ref)
        assert got == {"a": [1, 2, 3]}
        got["a"].append(4)  # each get is a fresh object, as from the node
        assert c.get(ref) == {"a": [1, 2, 3]}
        ref.release()
        assert stamps.lookup(ref.id) is None
        with pytest.raises(quiver.ObjectLost):
            c.get(ref)


def test_large_objects_are_read_whole_and_not_kept(lane_node):
    blob = os.urandom(3 << 20)
    with quiver.connect(lane_node.unix) as c:
        ref = c.put(blob)
        assert c.get(ref) == blob
        assert c.connection.stamps().lookup(ref.id) is None  # past CACHE_OBJECT_BYTES
        assert c.get(ref) == blob
        ref.release()


def _get_loop(address: str, ids: list[str], released, started, out) -> None:
    """In another process: get each object again and again; a get that starts after
    the test announced the object's release must raise, never return it."""
    from quiver.objects import ObjectRef
    with quiver.connect(address) as c:
        refs = [ObjectRef(i, "pickle", c.address) for i in ids]
        for r in refs:
            c.get(r)  # kept from now on
        started.set()
        stale = gets = 0
        deadline = time.monotonic() + 60
        while released.value < len(refs) and time.monotonic() < deadline:
            for k, r in enumerate(refs):
                was_released = k < released.value  # read before the get starts
                try:
                    c.get(r)
                    gets += 1
                    stale += was_released
                except quiver.ObjectLost:
                    pass
        out.put((stale, gets))


def test_a_release_in_another_process_races_gets_and_wins(lane_node):
    ctx = multiprocessing.get_context("spawn")
    with quiver.connect(lane_node.unix) as c:
        refs = [c.put(("object", k)) for k in range(40)]
        for r in refs:
            r.wait()
        released, started, out = ctx.Value("i", 0), ctx.Event(), ctx.Queue()
        child = ctx.Process(target=_get_loop, args=(lane_node.unix, [r.id for r in refs], released, started, out))
        child.start()
        try:
            assert started.wait(60)
            for k, r in enumerate(refs):
                time.sleep(0.002)
                r.release()  # answered: the node has bumped the object's generation
                released.value = k + 1
            stale, gets = out.get(timeout=90)
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
    assert gets > len(refs), "the other process hardly read anything: the race was not run"
    assert stale == 0, f"{stale} gets returned an object after its release"


def test_a_get_after_the_node_restarted_never_returns_a_kept_object():
    n = start_node(["--workers", "0"])
    try:
        c = quiver.connect(n.unix)
        ref = c.put("before the restart")
        assert c.get(ref) == "before the restart"
        assert c.connection.stamps().lookup(ref.id) is not None
        n.proc.kill()  # no drain: the node is gone at once, its objects with it
        n.proc.wait()
        n2 = start_node(["--workers", "0", "--socket", n.unix.removeprefix("grpc+unix://")])
        try:
            with pytest.raises((quiver.ObjectLost, quiver.Unavailable)):
                c.get(ref)
            with pytest.raises(quiver.ObjectLost):
                c.get(ref)  # the next get reaches the new node, which never held it
            assert wire(c) == "LaneWire"  # a new session, over the new node's lane
            c.close()
        finally:
            stop_node(n2)
    finally:
        if n.proc.poll() is None:
            stop_node(n)


def _lane_socket(node) -> tuple[socket.socket, str]:
    with flight.FlightClient(node.unix) as fc:
        info = json.loads(next(iter(fc.do_action(flight.Action("lane", b"")))).body.to_pybytes())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(info["path"])
    return s, info["key"]


def _frame(kind: int, header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<B3xIQ", kind, len(header), len(body)) + header + body


def _read_frame(s: socket.socket) -> tuple[int, dict]:
    buf = b""
    while len(buf) < 16:
        more = s.recv(1 << 16)
        if not more:
            return -1, {}
        buf += more
    kind, hlen, blen = struct.unpack_from("<B3xIQ", buf)
    while len(buf) < 16 + hlen + blen:
        buf += s.recv(1 << 16)
    return kind, json.loads(buf[16:16 + hlen])


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("case", ["no hello", "wrong key", "garbage"])
def test_a_lane_without_the_key_is_refused(lane_node, case):
    s, key = _lane_socket(lane_node)
    with s:
        if case == "no hello":
            s.sendall(_frame(lane.REQUEST, b'{"op": "get", "req": 1, "id": "x"}'))
        elif case == "wrong key":
            s.sendall(_frame(lane.HELLO, json.dumps({"key": "0" * 32}).encode()))
        else:
            s.sendall(b"\x00" * 3 + b"GET / HTTP/1.1\r\n\r\n")
        kind, header = _read_frame(s)
        if case != "garbage":
            assert kind == lane.REFUSED and header["code"] == "Unauthenticated"
        assert _closed(s)
    with quiver.connect(lane_node.unix) as c:  # the node serves on
        assert c.submit(pow, 3, 3).result() == 27


@pytest.mark.parametrize("body", [
    struct.pack("<Q", 5) + struct.pack("<2q", 0, 1) + b"x",          # more rows than the body holds
    struct.pack("<Q", 1) + struct.pack("<2q", 0, 99) + b"x",         # an offset past the data
    struct.pack("<Q", 2) + struct.pack("<3q", 0, 2, 1) + b"xy",      # offsets that fall
    struct.pack("<Q", 1) + struct.pack("<2q", 1, 2) + b"xy",         # offsets not from 0
    b"\x01\x02\x03",                                                  # too short for rows
])
def test_malformed_rows_end_the_lane_and_the_node_serves_on(lane_node, body):
    s, key = _lane_socket(lane_node)
    with s:
        s.sendall(_frame(lane.HELLO, json.dumps({"key": key}).encode()))
        msg, fds, _, _ = socket.recv_fds(s, 1 << 16, 1)
        for fd in fds:
            os.close(fd)
        assert msg[0] == lane.WELCOME
        meta = json.dumps({"op": "put", "req": 1, "id": "malformed"}).encode()
        s.sendall(_frame(lane.REQUEST, meta, body))
        assert _closed(s)
    with quiver.connect(lane_node.unix) as c:
        with pytest.raises(quiver.ObjectLost):
            c.get(quiver.objects.ObjectRef("malformed", "pickle", c.address))
        ref = c.put(pickle.dumps("fine"))
        assert pickle.loads(c.get(ref)) == "fine"
