//! `lockmgr --version` names the commit it was built from: `git rev-parse --short HEAD`,
//! or "unknown" when git or the repository is absent (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LOCKMGR_GIT_COMMIT={commit}");
    // Rebuilt when HEAD moves: a commit, a checkout (HEAD's file and the branch's ref).
    for file in
        [Some("HEAD".to_owned()), git(&["symbolic-ref", "-q", "HEAD"])].into_iter().flatten()
    {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
