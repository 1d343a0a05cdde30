use clap::Parser;

fn main() {
    let cli = podrunner::commands::Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(podrunner::commands::dispatch(cli));
    std::process::exit(code);
}
