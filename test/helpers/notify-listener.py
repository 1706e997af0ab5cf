#!/usr/bin/env python3
# A real NOTIFY_SOCKET for tests: an AF_UNIX datagram socket, as systemd's, that prints one JSON line per
# message with the sender's PID (SCM_CREDENTIALS). It answers systemd-notify's barrier the way systemd
# does: by closing the file descriptor that came with BARRIER=1.
import json, os, socket, struct, sys

path = sys.argv[1]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(path)
print(json.dumps({"listening": path}), flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 16))
    pid = None
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
        elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            for i in range(len(data) // 4):
                os.close(struct.unpack("i", data[i * 4:i * 4 + 4])[0])
    text = msg.decode("utf-8", "replace")
    if text.strip() == "BARRIER=1":
        continue
    print(json.dumps({"pid": pid, "message": text}), flush=True)
