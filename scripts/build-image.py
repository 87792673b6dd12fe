#!/usr/bin/env python3
"""Writes a container image archive by hand: no daemon, no image tool.

One uncompressed layer holding the --file entries (and with --ldd the shared
libraries and ELF interpreter they need), /etc/passwd and /etc/group with root
and nonroot (65532), /tmp (1777) and any --dir. The archive is an OCI image
layout (oci-layout, index.json, blobs/sha256/) that also carries Docker's
manifest.json, as `docker save` writes it, so both `ctr images import` and
`docker load` take it. The same inputs give a byte-identical archive: entries
sorted, owner 0:0 without names, mtime and the config's `created` from
SOURCE_DATE_EPOCH (default 0).

  build-image.py --name docker.io/fairlead/dataplane:0.1.0 \\
      --file target/fairlead-dataplane:/fairlead-dataplane \\
      --entrypoint /fairlead-dataplane --out dist/dataplane.tar

Arguments starting with '-' go in as --cmd=--help.
"""

import argparse
import datetime
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tarfile

PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnonroot:x:65532:\n"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


class Fail(Exception):
    """An input problem, reported as one line and exit status 1."""


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--name", required=True, help="image name with tag, e.g. docker.io/fairlead/dataplane:0.1.0")
    p.add_argument("--file", action="append", default=[], metavar="SRC:/DEST", help="a regular file into the image (executables 0755, others 0644)")
    p.add_argument("--ldd", action="store_true", help="also copy the shared libraries `ldd` lists for each dynamically linked --file, and its ELF interpreter")
    p.add_argument("--dir", action="append", default=[], metavar="/PATH:MODE", help="an empty directory (octal mode, e.g. /tmp:1777)")
    p.add_argument("--user", help="user[:group] the container runs as, e.g. 65532:65532")
    p.add_argument("--entrypoint", help="the program to run")
    p.add_argument("--cmd", action="append", default=[], metavar="ARG", help="one default argument (repeat for several)")
    p.add_argument("--port", action="append", default=[], metavar="PORT/PROTO", help="an exposed port, e.g. 9443/tcp")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable (PATH has a default)")
    p.add_argument("--out", required=True, metavar="FILE.tar")
    return p.parse_args(argv)


def normalize_name(name):
    """Returns (full name, tag, familiar name) like Docker's reference rules."""
    if "@" in name:
        raise Fail(f"--name {name}: digests are not supported, give a tag")
    repo, tag = name, "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    parts = repo.split("/")
    if not repo or not tag or any(not part for part in parts):
        raise Fail(f"--name {name}: not an image name")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain, path = parts[0], "/".join(parts[1:])
    else:
        domain, path = "docker.io", repo
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if path != path.lower():
        raise Fail(f"--name {name}: repository names are lower case")
    full = f"{domain}/{path}:{tag}"
    familiar = f"{path.removeprefix('library/')}:{tag}" if domain == "docker.io" else full
    return full, tag, familiar


def split_pair(value, flag, sep):
    if sep not in value:
        raise Fail(f"{flag} {value}: expected {'SRC:/DEST' if flag == '--file' else 'K' + sep + 'V'}")
    return value.rsplit(sep, 1) if flag in ("--file", "--dir") else value.split(sep, 1)


def image_path(dest, flag):
    if not dest.startswith("/") or dest == "/":
        raise Fail(f"{flag} {dest}: the path in the image must be absolute")
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Fail(f"{flag} {dest}: '..' is not allowed")
    return "/".join(parts)


def elf_interpreter(path):
    """The PT_INTERP of a 64-bit little-endian ELF file; None when static, not ELF."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF":
            return None
        if head[4] != 2 or head[5] != 1:
            raise Fail(f"{path}: only 64-bit little-endian ELF files are supported")
        phoff = struct.unpack_from("<Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(56)
            if len(ph) < 56:
                raise Fail(f"{path}: truncated ELF program headers")
            if struct.unpack_from("<I", ph, 0)[0] == 3:  # PT_INTERP
                offset, size = struct.unpack_from("<Q", ph, 8)[0], struct.unpack_from("<Q", ph, 32)[0]
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    return None


def shared_libraries(path):
    """Absolute paths of the ELF interpreter and of every library ldd resolves for `path`."""
    interp = elf_interpreter(path)
    if interp is None:
        return []
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise Fail("--ldd: ldd is not installed") from None
    if out.returncode != 0:
        raise Fail(f"ldd {path} failed: {out.stderr.strip() or out.stdout.strip()}")
    libs = {interp}
    for line in out.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            soname, target = (s.strip() for s in line.split("=>", 1))
            if target.startswith("not found"):
                raise Fail(f"ldd {path}: {soname} not found")
            target = target.split(" (", 1)[0].strip()
            if target.startswith("/"):
                libs.add(target)
        elif line.startswith("/"):
            libs.add(line.split(" (", 1)[0].strip())
    return sorted(libs)


def layer_entries(args):
    """{path in image: (kind, source or bytes, mode)} with every parent directory."""
    entries = {}

    def put(path, entry, flag):
        old = entries.get(path)
        if old is not None and old != entry:
            raise Fail(f"{flag}: /{path} is given twice, differently")
        entries[path] = entry

    for spec in args.file:
        src, dest = split_pair(spec, "--file", ":")
        path = image_path(dest, "--file")
        try:
            st = os.stat(src)
        except OSError as e:
            raise Fail(f"--file {spec}: {src}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise Fail(f"--file {spec}: {src} is not a regular file")
        executable = bool(st.st_mode & stat.S_IXUSR)
        put(path, ("file", os.path.realpath(src), 0o755 if executable else 0o644), "--file")
        if args.ldd and executable:
            for lib in shared_libraries(src):
                real = os.path.realpath(lib)
                if not os.path.isfile(real):
                    raise Fail(f"--ldd: {lib} (needed by {src}) is missing")
                mode = 0o755 if os.stat(real).st_mode & stat.S_IXUSR else 0o644
                put(image_path(lib, "--ldd"), ("file", real, mode), "--ldd")
    put("etc/passwd", ("data", PASSWD.encode(), 0o644), "/etc/passwd")
    put("etc/group", ("data", GROUP.encode(), 0o644), "/etc/group")
    put("tmp", ("dir", None, 0o1777), "--dir")
    for spec in args.dir:
        dest, mode = split_pair(spec, "--dir", ":")
        try:
            mode = int(mode, 8)
        except ValueError:
            raise Fail(f"--dir {spec}: {mode} is not an octal mode") from None
        if mode > 0o7777:
            raise Fail(f"--dir {spec}: mode out of range")
        put(image_path(dest, "--dir"), ("dir", None, mode), "--dir")
    for path in list(entries):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            kind = entries.setdefault(parent, ("dir", None, 0o755))[0]
            if kind != "dir":
                raise Fail(f"/{parent} is a file and the parent of /{path}")
    return entries


def tar_info(name, kind, size, mode, mtime):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if kind == "dir" else tarfile.REGTYPE
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_layer(f, entries, mtime):
    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            kind, source, mode = entries[path]
            if kind == "dir":
                tar.addfile(tar_info(path, kind, 0, mode, mtime))
            elif kind == "data":
                tar.addfile(tar_info(path, kind, len(source), mode, mtime), io.BytesIO(source))
            else:
                with open(source, "rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    tar.addfile(tar_info(path, kind, size, mode, mtime), src)


def sha256_file(f):
    f.seek(0)
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    size = f.tell()
    f.seek(0)
    return "sha256:" + h.hexdigest(), size


def dump(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def blob_path(digest):
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def image_config(args, created, diff_id):
    config = {"Env": [DEFAULT_PATH] if not any(e.startswith("PATH=") for e in args.env) else [], "WorkingDir": "/"}
    for env in args.env:
        split_pair(env, "--env", "=")
        config["Env"].append(env)
    if args.user:
        config["User"] = args.user
    if args.entrypoint:
        config["Entrypoint"] = [args.entrypoint]
    if args.cmd:
        config["Cmd"] = list(args.cmd)
    if args.port:
        for port in args.port:
            number, _, proto = port.partition("/")
            if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                raise Fail(f"--port {port}: expected PORT/tcp, PORT/udp or PORT/sctp")
        config["ExposedPorts"] = {p if "/" in p else p + "/tcp": {} for p in args.port}
    if args.label:
        config["Labels"] = dict(split_pair(label, "--label", "=") for label in args.label)
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "scripts/build-image.py"}],
    }


def build(args):
    full, tag, familiar = normalize_name(args.name)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not epoch.isdigit():
        raise Fail(f"SOURCE_DATE_EPOCH={epoch}: not a number of seconds")
    mtime = int(epoch)
    created = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = layer_entries(args)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise Fail(f"--out {args.out}: directory {out_dir} does not exist")
    tmp_layer, tmp_out = args.out + ".layer.tmp", args.out + ".tmp"
    try:
        with open(tmp_layer, "w+b") as layer:
            write_layer(layer, entries, mtime)
            layer.flush()
            layer_digest, layer_size = sha256_file(layer)
            config = dump(image_config(args, created, layer_digest))
            config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
            manifest = dump({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
            })
            manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            index = dump({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {"io.containerd.image.name": full, "org.opencontainers.image.ref.name": tag},
                }],
            })
            docker_manifest = dump([{"Config": blob_path(config_digest), "RepoTags": [familiar], "Layers": [blob_path(layer_digest)]}])
            members = {
                "oci-layout": dump({"imageLayoutVersion": "1.0.0"}),
                "index.json": index,
                "manifest.json": docker_manifest,
                blob_path(config_digest): config,
                blob_path(manifest_digest): manifest,
                blob_path(layer_digest): layer,
                "blobs": None,
                "blobs/sha256": None,
            }
            with open(tmp_out, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(members):
                    data = members[name]
                    if data is None:
                        tar.addfile(tar_info(name, "dir", 0, 0o755, mtime))
                    elif isinstance(data, bytes):
                        tar.addfile(tar_info(name, "file", len(data), 0o644, mtime), io.BytesIO(data))
                    else:
                        data.seek(0)
                        tar.addfile(tar_info(name, "file", layer_size, 0o644, mtime), data)
        os.replace(tmp_out, args.out)
    finally:
        for tmp in (tmp_layer, tmp_out):
            if os.path.exists(tmp):
                os.remove(tmp)
    size = os.path.getsize(args.out)
    print(f"{full} {manifest_digest} {args.out} ({size / 1e6:.1f} MB, {len(entries)} entries)")


def main(argv):
    args = parse_args(argv)
    try:
        build(args)
    except Fail as e:
        print(f"build-image.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
