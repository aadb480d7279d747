#!/usr/bin/env python3
"""A minimal peer for dfuhop-usb-server (PROTOCOL.md): one fixed STM32F407 ROM in DFU mode.

It exists only to prove the plumbing (server, umockdev, libusb, dfu-util) before the Swift
VirtualDevice model answers the protocol; it is not a device model. It answers descriptors,
SET_INTERFACE, GETSTATUS, GETSTATE, CLRSTATUS, ABORT and UPLOAD of block 0 (the DfuSe command
list); every DNLOAD and anything else gets a STALL.

    fixed_peer.py [--server PATH] [--port 1-3.2] -- COMMAND [ARGS...]

starts the server, plugs the ROM at PORT, runs COMMAND under the umockdev preload with the
testbed's UMOCKDEV_DIR, relays its output, and exits with its exit status. A line
"EMULATED-USB: replug" on the command's stdout makes the ROM leave the bus and come back on the
same port (a re-enumeration: new device number); the peer then writes "EMULATED-USB: replugged"
to the command's stdin.
"""
import argparse
import os
import subprocess
import sys
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

# USB 2.0 §9.6.1: bcdUSB 2.00, VID 0x0483, PID 0xDF11, bcdDevice 0x2200, strings 1/2/3, one configuration.
DEVICE = bytes([18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x83, 0x04, 0x11, 0xDF, 0x00, 0x22, 1, 2, 3, 1])
LAYOUTS = [
    "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
    "@Option Bytes  /0x1FFFC000/01*016 g",
    "@OTP Memory /0x1FFF7800/01*512 g,01*016 g",
    "@Device Feature/0xFFFF0000/01*004 g",
]
# DFU 1.1 §4.2.4: canDownload, canUpload, willDetach; detach timeout 255 ms; wTransferSize 2048; DfuSe 1.1a.
FUNCTIONAL = bytes([9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01])


def configuration():
    body = b""
    for alternate in range(len(LAYOUTS)):
        body += bytes([9, 4, 0, alternate, 0, 0xFE, 0x01, 0x02, 4 + alternate])
    body += FUNCTIONAL  # after the last alternate setting, where ST ROMs put it
    total = 9 + len(body)
    return bytes([9, 2, total & 0xFF, total >> 8, 1, 1, 0, 0xC0, 0x32]) + body


STRINGS = {1: "STMicroelectronics", 2: "STM32  BOOTLOADER", 3: "2061336E5056"}
STRINGS.update({4 + i: text for i, text in enumerate(LAYOUTS)})


def string_descriptor(index):
    if index == 0:
        return bytes([4, 3, 0x09, 0x04])
    text = STRINGS.get(index)
    if text is None:
        return None
    data = text.encode("utf-16-le")
    return bytes([2 + len(data), 3]) + data


class FixedROM:
    """The DFU state the plumbing test needs: dfuIDLE, dfuUPLOAD-IDLE after UPLOAD block 0."""

    DFU_IDLE, UPLOAD_IDLE = 2, 9

    def __init__(self):
        self.state = self.DFU_IDLE

    def control(self, request_type, request, value, index, length):
        """Returns (kind, data) for one control request."""
        if request_type == 0x80 and request == 6:  # GET_DESCRIPTOR
            kind, number = value >> 8, value & 0xFF
            answer = {1: DEVICE, 2: configuration()}.get(kind)
            if kind == 3:
                answer = string_descriptor(number)
            return ("ACK", answer[:length]) if answer is not None else ("STALL", b"")
        if request_type == 0x01 and request == 11:  # SET_INTERFACE
            return ("ACK", b"") if index == 0 and value < len(LAYOUTS) else ("STALL", b"")
        if request_type == 0x00 and request == 9:  # SET_CONFIGURATION
            return ("ACK", b"") if value == 1 else ("STALL", b"")
        if request_type == 0xA1 and request == 3:  # GETSTATUS: OK, poll 0 ms, state, iString 0
            return "ACK", bytes([0, 0, 0, 0, self.state, 0])[:length]
        if request_type == 0xA1 and request == 5:  # GETSTATE
            return "ACK", bytes([self.state])[:length]
        if request_type == 0x21 and request in (4, 6):  # CLRSTATUS, ABORT
            self.state = self.DFU_IDLE
            return "ACK", b""
        if request_type == 0xA1 and request == 2 and value == 0:  # UPLOAD block 0: DfuSe commands (AN3156 §6.1)
            self.state = self.UPLOAD_IDLE
            return "ACK", bytes([0x00, 0x21, 0x41, 0x92])[:length]
        return "STALL", b""


class Peer:
    def __init__(self, server_path, port):
        self.port = port
        self.rom = FixedROM()
        self.server = subprocess.Popen([server_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.write_lock = threading.Lock()
        self.events = {}
        self.condition = threading.Condition()
        self.errors = []
        ready = self.server.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "READY" or ready[1] != "2":
            raise SystemExit(f"fixed_peer: the server did not start: {ready}")
        self.umockdev_dir = ready[2]
        threading.Thread(target=self.serve, daemon=True).start()

    def send(self, line):
        with self.write_lock:
            self.server.stdin.write(line + "\n")
            self.server.stdin.flush()

    def serve(self):
        for line in self.server.stdout:
            words = line.split()
            if not words:
                continue
            if words[0] == "CONTROL":
                sequence = words[1]
                request_type, request, value, index, length = (int(word, 16) for word in words[3:8])
                kind, data = self.rom.control(request_type, request, value, index, length)
                self.send(f"REPLY {sequence} {kind} {data.hex() or '-'}" if kind == "ACK" else f"REPLY {sequence} {kind}")
            elif words[0] == "RESET":
                self.rom = FixedROM()
                self.send(f"REPLY {words[1]} ACK -")
            elif words[0] in ("PLUGGED", "UNPLUGGED"):
                with self.condition:
                    self.events[(words[0], words[1])] = self.events.get((words[0], words[1]), 0) + 1
                    self.condition.notify_all()
            elif words[0] == "ERROR":
                print(f"fixed_peer: server: {line.strip()}", file=sys.stderr)
                with self.condition:
                    self.errors.append(line.strip())
                    self.condition.notify_all()

    def wait_for(self, event, count):
        with self.condition:
            if not self.condition.wait_for(lambda: self.events.get((event, self.port), 0) >= count or self.errors, 30):
                raise SystemExit(f"fixed_peer: no {event} from the server")
            if self.errors:
                raise SystemExit(f"fixed_peer: {self.errors[0]}")

    def plug(self, count):
        serial = urllib.parse.quote(STRINGS[3])
        product = urllib.parse.quote(STRINGS[2])
        self.send(f"PLUG {self.port} {(DEVICE + configuration()).hex()} serial={serial} product={product}")
        self.wait_for("PLUGGED", count)

    def unplug(self, count):
        self.send(f"UNPLUG {self.port}")
        self.wait_for("UNPLUGGED", count)

    def quit(self):
        self.send("QUIT")
        self.server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.path.join(HERE, "build", "dfuhop-usb-server"))
    parser.add_argument("--port", default="1-3.2", help="port path of the emulated ROM (default 1-3.2)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    arguments = parser.parse_args()
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if not command:
        parser.error("give a command to run against the emulated ROM, after --")

    peer = Peer(arguments.server, arguments.port)
    plugs = 1
    peer.plug(plugs)
    environment = dict(os.environ, UMOCKDEV_DIR=peer.umockdev_dir)
    preload = environment.get("LD_PRELOAD", "")
    environment["LD_PRELOAD"] = "libumockdev-preload.so.0" + (":" + preload if preload else "")
    client = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, bufsize=1)
    try:
        for line in client.stdout:
            if line.strip() == "EMULATED-USB: replug":
                peer.unplug(plugs)
                plugs += 1
                peer.plug(plugs)
                client.stdin.write("EMULATED-USB: replugged\n")
                client.stdin.flush()
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        status = client.wait()
    finally:
        if client.poll() is None:
            client.kill()
        peer.quit()
    sys.exit(status)


if __name__ == "__main__":
    main()
