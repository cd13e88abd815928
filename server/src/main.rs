//! The `lockmgr` binary. Until the replicated server lands, `lockmgr demo` drives the
//! core state machine through a short scripted scenario and prints what it answers.

use clap::{Parser, Subcommand};
use lockmgr_core::{
    Command, Limits, LockMode, LockPath, LockRequest, PathRules, Reply, StateMachine,
};

#[derive(Parser)]
#[command(name = "lockmgr", version, about = "A distributed lock manager")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the core state machine through a scripted scenario.
    Demo,
}

fn main() {
    match Cli::parse().command {
        Cmd::Demo => demo(),
    }
}

fn demo() {
    let mut machine = StateMachine::new(Limits::default());
    let path =
        LockPath::parse("/db/users/schema-migration", PathRules::DEFAULT).expect("a valid path");
    let mut run = |label: &str, command: Command| {
        let applied = machine.apply(&command);
        println!("{label:<34} -> {:?}", applied.reply);
        applied.reply
    };
    let lease = |reply: Reply| match reply {
        Reply::LeaseGranted { lease_id, .. } => lease_id,
        other => panic!("lease grant refused: {other:?}"),
    };
    let a = lease(run("grant lease a (ttl 10s)", Command::GrantLease { ttl_ms: 10_000 }));
    let b = lease(run("grant lease b (ttl 10s)", Command::GrantLease { ttl_ms: 10_000 }));
    let lock = |lease_id, wait_timeout_ms| {
        Command::Lock(LockRequest {
            path: path.clone(),
            lease_id,
            mode: LockMode::Exclusive,
            wait_timeout_ms,
            holder_id: format!("demo-{lease_id}"),
            request_id: 0,
        })
    };
    run("a locks the path", lock(a, 0));
    run("b tries the path", lock(b, 0));
    run("b waits for the path (30s)", lock(b, 30_000));
    run("a's lease expires", Command::ExpireLease { lease_id: a });
    let check = machine.validate_fence(&path, 1);
    println!("{:<34} -> {check:?}", "is a's token 1 still valid?");
}
