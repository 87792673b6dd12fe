//! `fairlead-operator`: the in-cluster operator; see `--help`.

use anyhow::Context;
use clap::Parser;
use fairlead_operator::incluster::{self, OperatorArgs};
use kube::config::{KubeConfigOptions, Kubeconfig};

fn main() -> anyhow::Result<()> {
    let args = OperatorArgs::parse();
    fairlead_dataplane::diagnostics::init(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .with_context(|| format!("kubeconfig {}", path.display()))?
            }
            None => kube::Config::infer().await.context(
                "no kubeconfig: not in a cluster, and none in $KUBECONFIG or ~/.kube/config",
            )?,
        };
        let client = kube::Client::try_from(config).context("creating the Kubernetes client")?;
        incluster::run(client, args).await?;
        Ok(())
    })
}
