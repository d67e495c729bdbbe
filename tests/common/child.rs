//! Re-running the test binary on one test in a child process, for tests that change process-wide state
//! (resource limits, the SIGBUS action, the user id) where the change cannot reach the other tests.
//!
//! Shared by the integration tests (`common::child`) and the crate's unit tests (`crate::testing::child`,
//! which includes this file by path), so it uses nothing but `std`.
//!
//! The pattern: a test asks [`is_child`] whether it is the re-run; if not, it starts [`rerun`] (adding what
//! the child needs: a user, an environment) and judges the child's [`Output`]. [`in_child`] is the common
//! case, where the parent only asserts that the child passed.

use std::process::{Command, Output};

/// Set in a child to the exact name of the test it runs.
pub const CHILD_ENV: &str = "MMAP_SERVE_TEST_CHILD";

/// Whether this process is the child started by [`rerun`] for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|name| name == test)
}

/// A command that re-runs this test binary on `test` alone: libtest's exact name (`module::test`, without the
/// crate), one thread, output not captured, and [`CHILD_ENV`] set so that [`is_child`]`(test)` holds in it.
///
/// # Panics
///
/// When the test binary cannot name its own path.
pub fn rerun(test: &str) -> Command {
    let mut command =
        Command::new(std::env::current_exe().expect("the test binary knows its path"));
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test);
    command
}

/// The child's exit status, stdout and stderr, for an assertion message.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that a child ran its test and the test passed: exit status 0 and libtest's "1 passed" (a test name
/// that matched nothing would also exit 0, with "0 passed").
///
/// # Panics
///
/// When it did not, with the child's output.
pub fn assert_passed(output: &Output) {
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the child failed: {}",
        describe(output)
    );
}

/// Whether this process is the child that runs `test` alone. In the parent, re-runs `test` in a child
/// ([`rerun`]), asserts that it passed ([`assert_passed`]) and returns false; the test then returns:
///
/// ```text
/// if !child::in_child("out_of_file_descriptors_answers_503_and_recovers") {
///     return;
/// }
/// // Lower a limit: only this child process is affected.
/// ```
///
/// # Panics
///
/// In the parent, when the child cannot be started or its test fails.
pub fn in_child(test: &str) -> bool {
    if is_child(test) {
        return true;
    }
    assert_passed(
        &rerun(test)
            .output()
            .expect("the test binary can run itself"),
    );
    false
}
