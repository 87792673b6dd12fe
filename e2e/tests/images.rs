//! The test images (`fairlead_e2e::images`): byte-identical when built twice,
//! OCI and docker manifests that name the blobs' real digests, and, as root,
//! imported into a throwaway containerd and run: the dataplane and the
//! operator print their usage, the demo backend serves HTTP in a network
//! namespace the test creates, as user 65532.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fairlead_e2e::images::{
    Containerd, DEV_TAG, Image, dataplane_image, dataplane_image_tagged, demo_backend_image,
    operator_image,
};
use serde_json::Value;

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("fairlead-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blob a digest names, after checking that its content has that digest.
fn blob(root: &Path, digest: &Value) -> PathBuf {
    let digest = digest.as_str().unwrap();
    let path = root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    assert_eq!(sha256(&path), digest, "content of {}", path.display());
    path
}

/// Unpacks the archive and follows index.json and manifest.json to the blobs.
fn check_manifests(image: &Image, familiar: &str, user: &str, entrypoint: &str) {
    let dir = Scratch::new("image-unpacked");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&image.archive)
        .arg("-C")
        .arg(&dir.0)
        .status()
        .unwrap();
    assert!(status.success());
    let root = &dir.0;
    assert_eq!(
        json(&root.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );

    let index = json(&root.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    let annotations = &entries[0]["annotations"];
    assert_eq!(annotations["io.containerd.image.name"], image.name.as_str());
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"],
        image.name.rsplit(':').next().unwrap()
    );
    let manifest_path = blob(root, &entries[0]["digest"]);
    assert_eq!(
        entries[0]["size"],
        std::fs::metadata(&manifest_path).unwrap().len()
    );
    let manifest = json(&manifest_path);
    let config_path = blob(root, &manifest["config"]["digest"]);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer_path = blob(root, &layers[0]["digest"]);
    assert_eq!(
        layers[0]["size"],
        std::fs::metadata(&layer_path).unwrap().len()
    );

    let config = json(&config_path);
    // Uncompressed layer: its diff ID is its digest.
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(config["config"]["User"], user);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([entrypoint])
    );

    let docker = json(&root.join("manifest.json"));
    let rel = |p: &Path| p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        docker,
        serde_json::json!([{
            "Config": rel(&config_path),
            "RepoTags": [familiar],
            "Layers": [rel(&layer_path)],
        }])
    );

    let listing = Command::new("tar")
        .arg("-tvf")
        .arg(&layer_path)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for wanted in [
        entrypoint.trim_start_matches('/'),
        "etc/passwd",
        "etc/group",
        "tmp/",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {wanted}"))),
            "{wanted} missing from the layer:\n{listing}"
        );
    }
    assert!(
        listing.lines().all(|l| l.contains(" 0/0 ")),
        "owners other than 0/0:\n{listing}"
    );
}

#[test]
fn archives_are_reproducible_and_name_their_digests() {
    let dir = Scratch::new("image-rebuilt");
    let cases = [
        (
            dataplane_image().unwrap(),
            "fairlead/dataplane",
            "0:0",
            "/fairlead-dataplane",
        ),
        (
            operator_image().unwrap(),
            "fairlead/operator",
            "65532:65532",
            "/fairlead-operator",
        ),
        (
            demo_backend_image().unwrap(),
            "fairlead/demo-backend",
            "65532:65532",
            "/demo-backend",
        ),
    ];
    for (image, repo, user, entrypoint) in &cases {
        assert_eq!(image.name, format!("docker.io/{repo}:{DEV_TAG}"));
        let size = std::fs::metadata(&image.archive).unwrap().len();
        eprintln!("{} {:.1} MB", image.name, size as f64 / 1e6);
        check_manifests(image, &format!("{repo}:{DEV_TAG}"), user, entrypoint);
        // Built twice from the same binary: the same bytes. Other builds share
        // the target dir, so a round where the binary changed is tried again.
        let (a, b) = (dir.0.join("a.tar"), dir.0.join("b.tar"));
        let mut rounds = 0;
        loop {
            let before = sha256(&image.binary);
            image.rebuild_to(&a).unwrap();
            image.rebuild_to(&b).unwrap();
            if sha256(&image.binary) == before {
                break;
            }
            rounds += 1;
            assert!(rounds < 3, "{} kept changing", image.binary.display());
        }
        assert_eq!(sha256(&a), sha256(&b), "{} built twice", image.name);
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A network namespace of the test's own, deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new(name: &str) -> NetNs {
        let ns = NetNs(format!("{name}-{}", std::process::id()));
        let _ = Command::new("ip")
            .args(["netns", "del", &ns.0])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
        ok(&["netns", "add", &ns.0]);
        ok(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `ctr run --rm IMAGE ID COMMAND...`: the container's stdout. (ctr replaces
/// the image's entrypoint with COMMAND; Kubernetes `args` would keep it.)
fn run_to_end(containerd: &Containerd, image: &Image, id: &str, args: &[&str]) -> String {
    let mut cmd = vec!["run".into(), "--rm".into()];
    cmd.extend(containerd.run_options());
    cmd.extend([image.name.clone().into(), id.into()]);
    cmd.extend(args.iter().map(Into::into));
    containerd.ctr_ok(cmd).unwrap()
}

#[test]
fn images_import_into_containerd_and_run() {
    if !is_root() {
        eprintln!("skipped: running containers needs root");
        return;
    }
    let dataplane = dataplane_image().unwrap();
    let upgrade = dataplane_image_tagged("upgrade-test").unwrap();
    let operator = operator_image().unwrap();
    let backend = demo_backend_image().unwrap();
    let containerd = Containerd::start().unwrap();
    for image in [&dataplane, &upgrade, &operator, &backend] {
        let started = Instant::now();
        containerd.import(image).unwrap();
        eprintln!("imported {} in {:.1?}", image.name, started.elapsed());
    }

    let usage = run_to_end(
        &containerd,
        &dataplane,
        "dataplane-help",
        &["/fairlead-dataplane", "--help"],
    );
    assert!(usage.contains("Usage: fairlead-dataplane"), "{usage}");
    let usage = run_to_end(
        &containerd,
        &upgrade,
        "upgrade-help",
        &["/fairlead-dataplane", "--help"],
    );
    assert!(usage.contains("Usage: fairlead-dataplane"), "{usage}");
    let usage = run_to_end(
        &containerd,
        &operator,
        "operator-help",
        &["/fairlead-operator", "--help"],
    );
    assert!(usage.contains("Usage: fairlead-operator"), "{usage}");

    // The demo backend from its entrypoint (no command given; its defaults
    // listen on 127.0.0.1:8080, the name comes from the environment) in a
    // network namespace of the test's own, reached there by curl on its loopback.
    let netns = NetNs::new("fairlead-img");
    let mut cmd = vec!["run".into(), "--detach".into()];
    cmd.extend(containerd.run_options());
    cmd.push(format!("--with-ns=network:/var/run/netns/{}", netns.0).into());
    cmd.push("--env=DEMO_BACKEND_NAME=in-a-container".into());
    cmd.extend([backend.name.as_str(), "demo"].map(Into::into));
    containerd.ctr_ok(cmd).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let out = Command::new("ip")
            .args(["netns", "exec", &netns.0])
            .args(["curl", "-sS", "--max-time", "2", "http://127.0.0.1:8080/"])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the demo backend did not answer within 20 s: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            containerd.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body.trim(), "in-a-container");

    // It runs as the image's user, nonroot.
    let tasks = containerd.ctr_ok(["tasks", "ls"]).unwrap();
    let pid = tasks
        .lines()
        .find(|l| l.starts_with("demo "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no task demo in:\n{tasks}"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "65532", "65532", "65532", "65532"]
    );
    // Dropping containerd kills and deletes the task and the container.
}
