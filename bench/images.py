"""Writes the benchmark image set as an OCI layout, shaped like a Frappe deployment: three images,
25 layers, a big OS/runtime layer first then a tail of smaller application layers, with text-like
content that gzips about 2.5-3x (about 600 MB compressed at scale 1.0). Deterministic (seed 42).

usage: images.py OUT SCALE           one tag per image: mariadb:10.6, erpnext:v15, nginx:1.25
       images.py OUT SCALE --upgrade v1 and v2 of each (mariadb-v1, mariadb-v2, ...): v2 changes
                                     only the top layer, like an application upgrade
"""
import gzip, hashlib, io, json, os, random, sys, tarfile

out, scale = sys.argv[1], float(sys.argv[2])
upgrade = "--upgrade" in sys.argv[3:]
random.seed(42)
# Layer sizes in MB (uncompressed), largest first like real images.
images = {
    ("mariadb", "10.6"): [300, 100, 50, 25, 15, 5, 3, 2],
    ("erpnext", "v15"): [420, 160, 60, 40, 20, 10, 10, 5, 3, 2],
    ("nginx", "1.25"): [200, 60, 20, 10, 5, 3, 2],
}
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(random.randint(2, 12))) for _ in range(4000)]
vocab = " ".join(random.choice(words) for _ in range(1_500_000)).encode()  # ~10 MB of "source code"


def content(n):
    """n bytes: vocabulary slices and hex noise, like a mix of text and binaries."""
    parts, size = [], 0
    while size < n:
        start = random.randrange(0, len(vocab) - 70000)
        chunk = vocab[start:start + random.randint(20000, 60000)]
        noise = os.urandom(random.randint(400, 1200)).hex().encode()
        parts += [chunk, b"\n", noise, b"\n"]
        size += len(chunk) + len(noise) + 2
    return b"".join(parts)[:n]


os.makedirs(f"{out}/blobs/sha256", exist_ok=True)


def put(b):
    d = hashlib.sha256(b).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)


def layer(name, i, mb, tag):
    """One gzip layer of about mb * scale MB; returns (descriptor, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        left, f = int(mb * scale * 1e6), 0
        while left > 0:
            size = min(left, random.randint(200_000, 4_000_000))
            data = content(size)
            info = tarfile.TarInfo(f"opt/{name}/{tag}/layer{i}/file{f}.txt")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
            left -= size
            f += 1
    raw = raw.getvalue()
    d, s = put(gzip.compress(raw, compresslevel=6, mtime=0))
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
    return desc, "sha256:" + hashlib.sha256(raw).hexdigest()


index = []


def image(ref_name, tag, layers):
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"], "Labels": {"v": tag}},
              "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
              "history": [{"created_by": "bench"}] * len(layers)}
    cd, cs = put(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [l for l, _ in layers]}
    md, ms = put(json.dumps(manifest).encode())
    index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                  "annotations": {"org.opencontainers.image.ref.name": ref_name}})


for (name, tag), sizes in images.items():
    if upgrade:
        v1 = [layer(name, i, mb, "v1") for i, mb in enumerate(sizes)]
        v2 = v1[:-1] + [layer(name, len(sizes) - 1, sizes[-1], "v2")]
        image(f"{name}-v1", "v1", v1)
        image(f"{name}-v2", "v2", v2)
        print(f"  {name}: {len(sizes)} layers, v2 changes the top one", flush=True)
    else:
        layers = [layer(name, i, mb, tag) for i, mb in enumerate(sizes)]
        image(f"{name}:{tag}", tag, layers)
        print(f"  {name}:{tag}: {len(sizes)} layers, {sum(l['size'] for l, _ in layers) / 1e6:.0f} MB compressed", flush=True)
with open(f"{out}/oci-layout", "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": index}, f)
