#!/usr/bin/env python3
"""List the GPU code embedded in object files or static libraries (no cuobjdump needed).

Reads the .nv_fatbin section of each ELF object (directly, or inside an `ar` archive),
walks the fatbin entries and prints one line per entry: member, kind (sass = cubin for a
real GPU, ptx = virtual-ISA text JIT-compiled by the driver) and architecture.

  fatbin_archs.py build/kernels/libtessera_kernels.a            # print the table
  fatbin_archs.py --require sm_90 --require sm_80 LIB           # exit 1 if any is missing
  fatbin_archs.py --require-ptx sm_90 LIB                         # the same for PTX entries

Fatbin layout used (stable across CUDA 11-13): a 16-byte header {u32 magic 0xBA55ED50,
u16 version, u16 header_size, u64 body_size}, then entries {u16 kind (1 PTX, 2 ELF),
u16, u32 entry_header_size, u64 payload_size, ..., u32 arch at offset 28}.
"""
import argparse
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50


def elf_sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for i in range(shnum):
        name, _typ, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        headers.append((name, offset, size))
    str_off = headers[shstrndx][1]
    out = {}
    for name, offset, size in headers:
        end = data.index(b"\0", str_off + name)
        out[data[str_off + name:end].decode(errors="replace")] = data[offset:offset + size]
    return out


def fatbin_entries(blob):
    pos = 0
    while pos + 16 <= len(blob):
        magic, _version, header_size, body_size = struct.unpack_from("<IHHQ", blob, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # fatbins in a section are 8-byte aligned
            continue
        p, end = pos + header_size, pos + header_size + body_size
        while p + 32 <= end:
            kind, _u, entry_header, payload = struct.unpack_from("<HHIQ", blob, p)
            arch = struct.unpack_from("<I", blob, p + 28)[0]
            yield ("ptx" if kind == 1 else "sass" if kind == 2 else f"kind{kind}"), arch
            p += entry_header + payload
        pos = end


def ar_members(data):
    pos = 8
    names = b""
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip()
        size = int(header[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        if name == "//":
            names = body
        elif name.startswith("/") and name[1:].isdigit():
            off = int(name[1:])
            name = names[off:names.index(b"\n", off)].decode().rstrip("/")
            yield name, body
        elif name not in ("/", "/SYM64/"):
            yield name.rstrip("/"), body
        pos += 60 + size + (size & 1)


def inspect(path):
    data = open(path, "rb").read()
    members = ar_members(data) if data[:8] == b"!<arch>\n" else [(path, data)]
    for name, body in members:
        fatbin = elf_sections(body).get(".nv_fatbin")
        if fatbin:
            for kind, arch in fatbin_entries(fatbin):
                yield name, kind, arch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--require", action="append", default=[],
                        help="sm_XX that must be present as SASS (repeatable)")
    parser.add_argument("--require-ptx", action="append", default=[],
                        help="sm_XX that must be present as PTX (compute_XX; repeatable)")
    args = parser.parse_args()
    found = {"sass": set(), "ptx": set()}
    for f in args.files:
        for member, kind, arch in inspect(f):
            print(f"{member}\t{kind}\tsm_{arch}")
            found.setdefault(kind, set()).add(f"sm_{arch}")
    status = 0
    for kind, required in (("sass", args.require), ("ptx", args.require_ptx)):
        missing = [r for r in required if r not in found[kind]]
        if missing:
            print(f"missing {kind.upper()} for: " + ", ".join(missing), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
