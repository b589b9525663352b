//! `polypay plugin`: tools for plugin authors and operators, needing no config or
//! database: `new` (a plugin from a template, [`super::scaffold`]) and `check` (a
//! component against the contract, [`super::check`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Generate a new plugin from a template: a manifest, one authenticated route, one
    /// webhook renderer, an OpenAPI document, unit tests on the SDK's harness and an
    /// integration test against a real polypay server.
    New(NewArgs),
    /// Load a component and report its contract version, manifest, imports and exports,
    /// and every contract violation. Exits non-zero if there is any.
    Check {
        /// The component, e.g. target/wasm32-wasip2/release/my_plugin.wasm.
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin name: lower-case letters, digits and `-` (e.g. `hello-pay`).
    pub name: String,
    /// The template language.
    #[arg(long, default_value = "rust")]
    pub lang: String,
    /// Where to write it (must not exist or be empty); default: ./NAME.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The plugin-sdk directory the plugin depends on (by path); default: the SDK of the
    /// polypay checkout this binary was built from.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// Runs a `polypay plugin` command; `check` fails when it found violations.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New(args) => {
            let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
            let written =
                super::scaffold::generate(&args.name, &args.lang, &dir, args.sdk.as_deref())?;
            println!(
                "created the {} plugin `{}` in {} ({} files); see its README.md to build, test and mount it",
                args.lang,
                args.name,
                dir.display(),
                written.len()
            );
            Ok(())
        }
        PluginCommand::Check { path } => {
            let report = super::check::check(&path).await;
            print!("{report}");
            anyhow::ensure!(
                report.passed(),
                "{} breaks the plugin contract (see above)",
                path.display()
            );
            Ok(())
        }
    }
}
