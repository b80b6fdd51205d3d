//! `plan apply --sandbox`: a throwaway PostgreSQL cluster seeded from the
//! plan's `fixture/` folder, and a copy of the plan's folder to run in, so
//! that neither a real server nor the checkout is ever touched. A plan
//! folder without `fixture/` is refused: a real plan's `systemctl` must
//! never run by accident.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cluster::{self, Cluster, ClusterError};
use crate::target::{self, Env, ResolvedTarget, Selection, TargetError};

/// The sandbox's database.
pub const DATABASE: &str = "demo";

#[derive(Debug, Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("`{}` has no `fixture/` folder beside it", plan.display())]
    #[diagnostic(
        code(plan::sandbox::no_fixture),
        help(
            "--sandbox runs only plans that bring their own fixture (see plans/demo/README.md), so that a real plan's commands never run"
        )
    )]
    NoFixture { plan: PathBuf },

    #[error("cannot prepare the sandbox folder: {detail}")]
    #[diagnostic(code(plan::sandbox::folder))]
    Folder { detail: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] ClusterError),

    #[error("loading `{}` into the sandbox failed:\n{detail}", file.display())]
    #[diagnostic(code(plan::sandbox::fixture))]
    Fixture { file: PathBuf, detail: String },
}

/// A running sandbox; dropping it stops the cluster and removes the copy.
pub struct Sandbox {
    cluster: Cluster,
    plan: PathBuf,
    // Dropped last: the cluster may still be writing into its own folder.
    _folder: tempfile::TempDir,
}

impl Sandbox {
    pub fn start(plan: &Path) -> Result<Sandbox, SandboxError> {
        let source = match plan.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let fixture = source.join("fixture");
        if !fixture.is_dir() {
            return Err(SandboxError::NoFixture {
                plan: plan.to_path_buf(),
            });
        }
        let folder = tempfile::Builder::new()
            .prefix("plan-sandbox-")
            .tempdir()
            .map_err(|e| SandboxError::Folder {
                detail: e.to_string(),
            })?;
        let copy = folder.path().join("plan");
        let copied = duct::cmd!("cp", "-a", "--", &source, &copy)
            .stdin_null()
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| SandboxError::Folder {
                detail: e.to_string(),
            })?;
        if !copied.status.success() {
            return Err(SandboxError::Folder {
                detail: String::from_utf8_lossy(&copied.stderr).trim().to_string(),
            });
        }
        let plan_copy = copy.join(plan.file_name().unwrap_or_default());
        say("sandbox: starting a throwaway PostgreSQL cluster");
        let cluster = Cluster::start(cluster::Options::default())?;
        say(&format!(
            "sandbox: PostgreSQL on port {}, socket in {}; plan folder copied to {}",
            cluster.port(),
            cluster.host(),
            copy.display()
        ));
        cluster.create_database(DATABASE)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(copy.join("fixture"))
            .map_err(|e| SandboxError::Folder {
                detail: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| !k.starts_with("PG"))
            .chain(
                cluster
                    .libpq_env(DATABASE)
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone())),
            )
            .collect();
        for file in files {
            let args: Vec<std::ffi::OsString> = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"]
                .iter()
                .map(Into::into)
                .chain([file.clone().into_os_string()])
                .collect();
            let output = duct::cmd(cluster.bin("psql"), args)
                .full_env(env.clone())
                .stdin_null()
                .stdout_null()
                .stderr_capture()
                .unchecked()
                .run()
                .map_err(|e| SandboxError::Fixture {
                    file: file.clone(),
                    detail: e.to_string(),
                })?;
            if !output.status.success() {
                return Err(SandboxError::Fixture {
                    file,
                    detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                });
            }
        }
        Ok(Sandbox {
            cluster,
            plan: plan_copy,
            _folder: folder,
        })
    }

    /// The copied plan, which the run uses.
    pub fn plan_path(&self) -> &Path {
        &self.plan
    }

    /// The sandbox database as a target.
    pub fn target(&self) -> Result<ResolvedTarget, TargetError> {
        let env = Env::empty()
            .with_var("PGHOST", self.cluster.host())
            .with_var("PGPORT", &self.cluster.port().to_string())
            .with_var("PGUSER", self.cluster.user());
        target::resolve(
            &Selection {
                database: Some(DATABASE),
                ..Selection::default()
            },
            &env,
        )
    }
}

/// A line of the sandbox's own, timestamped like the run's lines that
/// follow it.
fn say(line: &str) {
    crate::commands::eprint(&format!("{}\n", crate::exec::progress::stamped(line)));
}
