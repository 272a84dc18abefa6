//! Several `ocireg serve` replicas on one S3 bucket (moto) behind HAProxy: the deployment of
//! "several replicas on one bucket" (docs/operations.md), for end-to-end tests. Nothing is shared
//! between the replicas but the bucket; the balancer sends every request to the next replica
//! (`balance roundrobin`, a new connection per request).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::haproxy::Haproxy;
use crate::objstore::{Moto, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use crate::serve::Serve;

/// A bucket, its replicas and the balancer in front of them; everything stops on drop.
pub struct Replicas {
    /// The S3 server.
    pub moto: Moto,
    /// The bucket every replica stores in.
    pub bucket: String,
    /// The replicas; `None` once killed.
    pub replicas: Vec<Option<Serve>>,
    /// The balancer in front of them.
    pub balancer: Haproxy,
    dir: tempfile::TempDir,
}

impl Replicas {
    /// Starts moto with one bucket, `n` replicas on it and HAProxy in front of them.
    pub fn start(n: usize) -> Replicas {
        Replicas::start_with(n, "")
    }

    /// [`Replicas::start`] with extra YAML under `registry.local` for every replica (indented
    /// by four spaces), e.g. `"    ops_config: {gc_grace_period: 1}\n"`.
    pub fn start_with(n: usize, local_extra: &str) -> Replicas {
        let moto = Moto::start();
        let bucket = "replicas".to_string();
        moto.create_bucket(&bucket);
        let dir = tempfile::Builder::new()
            .prefix("ocireg-replicas-")
            .tempdir()
            .unwrap();
        let replicas: Vec<Option<Serve>> = (0..n)
            .map(|i| {
                Some(start_replica(
                    dir.path(),
                    i,
                    &moto.endpoint(),
                    &bucket,
                    local_extra,
                ))
            })
            .collect();
        let backends: Vec<SocketAddr> = replicas.iter().flatten().map(|r| r.addr).collect();
        let balancer = Haproxy::start(&backends);
        Replicas {
            moto,
            bucket,
            replicas,
            balancer,
            dir,
        }
    }

    /// The balancer's base URL (`http://127.0.0.1:PORT`).
    pub fn base(&self) -> String {
        self.balancer.base.clone()
    }

    /// Replica `i`'s own base URL.
    pub fn replica_base(&self, i: usize) -> String {
        self.replicas[i]
            .as_ref()
            .map(|r| r.base.clone())
            .expect("replica is running")
    }

    /// Kills replica `i` with SIGKILL (no graceful shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut r) = self.replicas[i].take() {
            r.kill();
        }
    }

    /// Every running replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .map(|r| format!("--- replica {i}\n{}", r.log_text()))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Where the replicas' config files are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The config of replica `i`: the bucket, its own data directory, no metrics listener (each
/// replica would need its own `metrics_port`).
fn replica_config(dir: &Path, i: usize, endpoint: &str, bucket: &str, extra: &str) -> PathBuf {
    let data = dir.join(format!("replica-{i}"));
    std::fs::create_dir_all(&data).unwrap();
    let yaml = format!(
        "registry:\n  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  \
         namespaces: {{}}\n  local:\n    data_dir: {data}\n    config_path: {data}/native.yml\n    storage_config:\n      \
         backend: s3\n      s3: {{bucket: {bucket}, region: us-east-1, endpoint: \"{endpoint}\", \
         path_style: true, allow_http: true}}\n{extra}",
        data = data.display(),
    );
    let path = dir.join(format!("replica-{i}.yml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start_replica(dir: &Path, i: usize, endpoint: &str, bucket: &str, extra: &str) -> Serve {
    let config = replica_config(dir, i, endpoint, bucket, extra);
    Serve::builder()
        .config(config)
        .listen("127.0.0.1:0")
        .env("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("OCIREG_LOG", "info")
        .start()
}
