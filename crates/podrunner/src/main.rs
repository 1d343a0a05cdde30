use clap::Parser;

fn main() {
    let cli = podrunner::commands::Cli::parse();
    // Before any thread starts: a multithreaded process cannot enter a user namespace
    // (setns(2)), which a rootless engine needs (commands/engine_exec.rs, commands/engine_pin.rs).
    let single_threaded = match &cli.command {
        podrunner::commands::Command::EngineExec(a) => {
            Some(podrunner::commands::engine_exec::exec(a))
        }
        podrunner::commands::Command::EnginePin(a) => {
            Some(podrunner::commands::engine_pin::exec(a))
        }
        _ => None,
    };
    if let Some(result) = single_threaded {
        std::process::exit(podrunner::commands::exit::report(result));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(podrunner::commands::dispatch(cli));
    std::process::exit(code);
}
