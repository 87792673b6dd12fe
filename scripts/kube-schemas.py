#!/usr/bin/env python3
"""Writes JSON schemas for kubeconform, offline, and prints their directory.

Sources (all read from disk; Go's module cache is filled by `go mod download`,
which needs the Go module proxy only the first time):
  - Kubernetes' OpenAPI v2 document, api/openapi-spec/swagger.json of the
    k8s.io/kubernetes module pinned in e2e/go/kube-apiserver/go.mod;
  - fairlead's CRDs, deploy/crds/fairlead.io_crds.yaml;
  - the ServiceMonitor and PodMonitor CRDs of the prometheus-operator module
    (example/prometheus-operator-crd/, PROMETHEUS_OPERATOR below).

Layout: kubeconform's own (its -schema-location default, without the URL):
  OUT/v<k8s version>-standalone[-strict]/<kind>-<first label of group>-<version>.json
e.g. deployment-apps-v1.json, service-v1.json, frontend-fairlead-v1alpha1.json.
Use it with
  kubeconform -strict -schema-location OUT -kubernetes-version 1.37.2 FILES...
Each file is self-contained: the definitions it refers to are under
"definitions" in the same file. The -strict variant forbids properties an
object's schema does not list (additionalProperties: false), as the API server's
strict field validation does; objects without listed properties, int-or-string
and quantities stay open as the API allows them.

OUT defaults to ${FAIRLEAD_E2E_BIN:-~/.cache/fairlead-e2e/<k8s version>}/schemas.
The schemas are rewritten only when a source or this script changed (stamp file).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
MONITORING_CRDS = ["monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_podmonitors.yaml"]
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Definitions whose JSON shape is not what the OpenAPI type says.
SPECIAL = {
    # "1", 1 and 1.5 are all quantities (the OpenAPI says string).
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": ["string", "number"]},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": ["string", "integer"]},
}
# JSON-schema keywords copied as they are (descriptions, defaults and x- extensions are not).
PLAIN = [
    "type", "format", "enum", "required", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems",
    "maxItems", "uniqueItems", "minProperties", "maxProperties",
]


def k8s_version():
    with open(os.path.join(REPO, "e2e/go/kube-apiserver/go.mod")) as f:
        for line in f:
            m = re.match(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", line)
            if m:
                return m.group(1)
    sys.exit("kube-schemas: no k8s.io/kubernetes version in e2e/go/kube-apiserver/go.mod")


def module_dir(path, version):
    """The module's directory in Go's module cache (downloaded if missing)."""
    env = dict(os.environ, GOWORK="off", GOFLAGS="-mod=mod")
    with tempfile.TemporaryDirectory() as outside_any_module:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{path}@{version}"],
            cwd=outside_any_module, env=env, capture_output=True, text=True, timeout=900,
        )
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Dir" not in info:
        sys.exit(f"kube-schemas: go mod download {path}@{version}: {info.get('Error') or out.stderr}")
    return info["Dir"]


def convert(schema, strict, refs, crd):
    """One schema (OpenAPI v2 when not crd, a CRD's OpenAPI v3 when crd) as draft-4
    JSON schema. Walks only schema positions, so a property literally named
    "$ref" or "x-kubernetes-int-or-string" (the CRD kind's own schema has both)
    is a property, not a keyword. Definitions referred to are added to refs."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        refs.add(name)
        return {"$ref": "#/definitions/" + name}
    out = {k: schema[k] for k in PLAIN if k in schema}
    if "properties" in schema:
        out["properties"] = {k: convert(v, strict, refs, crd) for k, v in schema["properties"].items()}
    if "items" in schema:
        out["items"] = convert(schema["items"], strict, refs, crd)
    if "additionalProperties" in schema:
        out["additionalProperties"] = convert(schema["additionalProperties"], strict, refs, crd)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [convert(s, strict, refs, crd) for s in schema[key]]
    if "not" in schema:
        out["not"] = convert(schema["not"], strict, refs, crd)
    open_object = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if schema.get("x-kubernetes-embedded-resource") is True:
        # An embedded object always may carry apiVersion, kind and metadata.
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if schema.get("x-kubernetes-int-or-string") is True or schema.get("format") == "int-or-string":
        out.pop("type", None)
        out.pop("format", None)
        out["type"] = ["integer", "string"]
    if crd and schema.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = types + ["null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    if strict and "properties" in out and "additionalProperties" not in out and not open_object:
        out["additionalProperties"] = False
    return out


def closure(names, definitions, strict):
    """The converted definitions named, and every one they refer to."""
    done, todo = {}, list(names)
    while todo:
        name = todo.pop()
        if name in done:
            continue
        if name in SPECIAL:
            done[name] = SPECIAL[name]
            continue
        if name not in definitions:
            sys.exit(f"kube-schemas: unresolved $ref {name}")
        refs = set()
        done[name] = convert(definitions[name], strict, refs, crd=False)
        todo.extend(refs - done.keys())
    return done


def file_name(group, version, kind):
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json."""
    suffix = "-" + group.split(".")[0].lower() + "-" + version.lower() if group else "-" + version.lower()
    return f"{kind.lower()}{suffix}.json"


def builtin_schemas(swagger, strict):
    definitions = swagger["definitions"]
    for name, d in sorted(definitions.items()):
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            refs = {name}
            defs = closure(refs, definitions, strict)
            schema = {"$ref": "#/definitions/" + name, "definitions": defs}
            yield file_name(gvk["group"], gvk["version"], gvk["kind"]), name, schema


def crd_schemas(docs, definitions, strict):
    for doc in docs:
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            refs = set()
            root = convert(version["schema"]["openAPIV3Schema"], strict, refs, crd=True)
            props = root.setdefault("properties", {})
            # The API server keeps metadata as ObjectMeta whatever the CRD says.
            props["metadata"] = {"$ref": "#/definitions/" + OBJECT_META}
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            refs.add(OBJECT_META)
            root["definitions"] = closure(refs, definitions, strict)
            origin = f"CRD {doc['metadata']['name']} {version['name']}"
            yield file_name(spec["group"], version["name"], spec["names"]["kind"]), origin, root


def sources(version):
    k8s = os.path.join(module_dir("k8s.io/kubernetes", version), "api/openapi-spec/swagger.json")
    prom = module_dir(*PROMETHEUS_OPERATOR)
    crds = [os.path.join(REPO, "deploy/crds/fairlead.io_crds.yaml")]
    crds += [os.path.join(prom, "example/prometheus-operator-crd", f) for f in MONITORING_CRDS]
    return k8s, crds


def stamp_of(paths):
    h = hashlib.sha256()
    for p in [os.path.abspath(__file__)] + paths:
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def write_all(out, version, swagger_path, crd_paths):
    with open(swagger_path) as f:
        swagger = json.load(f)
    crd_docs = []
    for p in crd_paths:
        with open(p) as f:
            crd_docs.extend(yaml.safe_load_all(f))
    count = 0
    for strict in (False, True):
        folder = os.path.join(out, f"{version}-standalone" + ("-strict" if strict else ""))
        os.makedirs(folder)
        origins = {}
        entries = list(builtin_schemas(swagger, strict))
        entries += list(crd_schemas(crd_docs, swagger["definitions"], strict))
        for name, origin, schema in entries:
            if origins.setdefault(name, origin) != origin:
                sys.exit(f"kube-schemas: {name} would hold both {origins[name]} and {origin}")
            with open(os.path.join(folder, name), "w") as f:
                json.dump(schema, f, sort_keys=True, separators=(",", ":"))
            count += 1
    return count


def main():
    version = k8s_version()
    default_base = os.environ.get("FAIRLEAD_E2E_BIN") or os.path.expanduser(f"~/.cache/fairlead-e2e/{version}")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(default_base, "schemas"), help="schema directory")
    out = os.path.abspath(parser.parse_args().out)
    swagger_path, crd_paths = sources(version)
    stamp = stamp_of([swagger_path] + crd_paths)
    stamp_file = os.path.join(out, ".stamp")
    if os.path.exists(stamp_file) and open(stamp_file).read() == stamp:
        print(out)
        return
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".schemas.", dir=parent)
    try:
        count = write_all(tmp, version, swagger_path, crd_paths)
        with open(os.path.join(tmp, ".stamp"), "w") as f:
            f.write(stamp)
        # Replace the old directory (rename is atomic; a reader never sees half a set).
        old = None
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=".schemas-old.", dir=parent)
            os.rename(out, os.path.join(old, "s"))
        os.rename(tmp, out)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"kube-schemas: wrote {count} schemas for Kubernetes {version}", file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
