//! Tests of the SIGBUS guard. Faults are process-wide, so every scenario that faults or changes the SIGBUS
//! action runs in a child: the test re-runs this test binary on itself alone (`crate::testing::child`), and the
//! parent judges the child's exit status and output.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write as _;
use std::mem;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libc::{c_int, c_void, siginfo_t};
use memmap2::{Mmap, MmapOptions};

use super::registry::{FREE, LIVE, REGISTRY, STATE_MASK};
use super::reserve::RESERVE;
use super::*;
use crate::testing::child::{self, describe};
use crate::testing::pattern;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;
/// Printed by a child whose scenario ran to its end.
const DONE: &str = "GUARD-CHILD-DONE";
const ZEROS: [u8; PAGE] = [0; PAGE];

/// In the parent: runs `name` (a test of this module) alone in a child process and returns its output, for the
/// test to judge (an exit by signal can be the expected outcome). In that child: runs `body` without core dumps,
/// then prints [`DONE`].
fn in_child(name: &str, body: impl FnOnce()) -> Option<Output> {
    let module = module_path!();
    let module = module
        .split_once("::")
        .map_or(module, |(_crate, rest)| rest);
    let full = format!("{module}::{name}");
    if child::is_child(&full) {
        no_core_dumps();
        println!(); // libtest has printed "test <name> ... " without a newline
        body();
        println!("{DONE}");
        return None;
    }
    let output = child::rerun(&full)
        .output()
        .expect("the test binary can run itself");
    Some(output)
}

fn stdout_has(output: &Output, marker: &str) -> bool {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line == marker)
}

fn assert_survived(output: &Output) {
    assert!(
        output.status.success() && stdout_has(output, DONE),
        "{}",
        describe(output)
    );
}

/// The child printed `reached` and then died of SIGBUS, before finishing.
fn assert_killed_by_sigbus(output: &Output, reached: &str) {
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGBUS),
        "{}",
        describe(output)
    );
    assert!(
        stdout_has(output, reached) && !stdout_has(output, DONE),
        "{}",
        describe(output)
    );
}

fn no_core_dumps() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `none` is a valid rlimit that outlives the call; setrlimit only reads it.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
}

fn write_file(path: &Path, len: usize) {
    std::fs::write(path, pattern(len)).expect("the temp dir is writable");
}

fn map(path: &Path) -> Mmap {
    let file = File::open(path).expect("the file was just written");
    // SAFETY: test files live in a private temp dir; changing them under the map is what is being tested.
    unsafe { Mmap::map(&file) }.expect("the file can be mapped")
}

fn register(map: &[u8]) -> Registration {
    // SAFETY: `map` is a read-only file mapping the test owns, and every test drops the registration first.
    unsafe { Registration::new(map.as_ptr(), map.len()) }.expect("the registry has room")
}

#[derive(Clone, Copy)]
enum Truncator {
    ThisThread,
    OtherThread,
    OtherProcess,
}

fn truncate(path: &Path, len: usize, by: Truncator) {
    let set_len = move |path: &Path| {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .expect("the file exists");
        file.set_len(len as u64).expect("the file can be truncated");
    };
    match by {
        Truncator::ThisThread => set_len(path),
        Truncator::OtherThread => {
            let path = path.to_owned();
            std::thread::spawn(move || set_len(&path))
                .join()
                .expect("truncating thread");
        }
        Truncator::OtherProcess => {
            let status = Command::new("truncate")
                .args(["-s", &len.to_string()])
                .arg(path)
                .status()
                .expect("coreutils truncate runs");
            assert!(status.success());
        }
    }
}

/// Reads every byte: the first `kept` must be the file's, the rest zeros.
fn assert_kept_then_zeros(map: &[u8], kept: usize) {
    assert!(
        map[..kept] == pattern(kept)[..],
        "bytes before the new end changed"
    );
    let first_nonzero = map[kept..]
        .chunks(PAGE)
        .position(|page| page != &ZEROS[..page.len()]);
    assert_eq!(first_nonzero, None, "a page past the new end is not zeros");
}

/// Maps a file of `len` bytes, registers it, touches every page, truncates it to `new_len` and reads all.
fn truncation_scenario(len: usize, new_len: usize, by: Truncator, poisoned: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("served.bin");
    write_file(&path, len);
    let map = map(&path);
    let registration = register(&map);
    assert!(sigbus_protection_active());
    black_box(map.chunks(PAGE).map(|page| page[0] as u64).sum::<u64>());
    truncate(&path, new_len, by);
    assert!(!registration.is_poisoned(), "nothing faulted yet");
    let caught = caught_faults();
    assert_kept_then_zeros(&map, new_len);
    assert_eq!(registration.is_poisoned(), poisoned);
    println!("caught faults: {}", caught_faults() - caught);
    drop(registration);
}

#[test]
fn truncation_to_1mib_in_this_thread_is_contained() {
    let Some(out) = in_child("truncation_to_1mib_in_this_thread_is_contained", || {
        truncation_scenario(64 * MIB, MIB, Truncator::ThisThread, true);
    }) else {
        return;
    };
    assert_survived(&out);
    assert!(stdout_has(&out, "caught faults: 1"), "{}", describe(&out));
}

#[test]
fn truncation_to_1mib_by_another_thread_is_contained() {
    let Some(out) = in_child("truncation_to_1mib_by_another_thread_is_contained", || {
        truncation_scenario(64 * MIB, MIB, Truncator::OtherThread, true);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn truncation_to_1mib_by_another_process_is_contained() {
    let Some(out) = in_child("truncation_to_1mib_by_another_process_is_contained", || {
        truncation_scenario(64 * MIB, MIB, Truncator::OtherProcess, true);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn truncation_to_0_in_this_thread_is_contained() {
    let Some(out) = in_child("truncation_to_0_in_this_thread_is_contained", || {
        truncation_scenario(64 * MIB, 0, Truncator::ThisThread, true);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn truncation_to_0_by_another_process_is_contained() {
    let Some(out) = in_child("truncation_to_0_by_another_process_is_contained", || {
        truncation_scenario(64 * MIB, 0, Truncator::OtherProcess, true);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn truncation_of_only_the_last_page_is_contained() {
    let Some(out) = in_child("truncation_of_only_the_last_page_is_contained", || {
        truncation_scenario(64 * MIB, 64 * MIB - PAGE, Truncator::OtherProcess, true);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn truncation_removing_a_partial_last_page_is_contained() {
    let Some(out) = in_child(
        "truncation_removing_a_partial_last_page_is_contained",
        || {
            truncation_scenario(10 * PAGE + 123, 10 * PAGE, Truncator::ThisThread, true);
        },
    ) else {
        return;
    };
    assert_survived(&out);
}

/// No page leaves the mapping, so nothing faults: the tail reads as zeros and only the file's identity
/// (its length) tells the caller. The guard is not the whole defence.
#[test]
fn truncation_within_the_last_page_does_not_fault() {
    let Some(out) = in_child("truncation_within_the_last_page_does_not_fault", || {
        truncation_scenario(64 * MIB, 64 * MIB - 100, Truncator::ThisThread, false);
    }) else {
        return;
    };
    assert_survived(&out);
    assert!(stdout_has(&out, "caught faults: 0"), "{}", describe(&out));
}

#[test]
fn populated_mapping_is_contained_too() {
    let Some(out) = in_child("populated_mapping_is_contained_too", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("populated.bin");
        write_file(&path, 8 * MIB);
        let file = File::open(&path).expect("file");
        // SAFETY: a private temp file; truncating it under the map is the test.
        let map = unsafe { MmapOptions::new().populate().map(&file) }.expect("map");
        let registration = register(&map);
        truncate(&path, MIB, Truncator::ThisThread);
        assert_kept_then_zeros(&map, MIB);
        assert!(registration.is_poisoned());
    }) else {
        return;
    };
    assert_survived(&out);
}

/// With `vm.max_map_count` used up (`mmap` fails), neither replacement can map until the handler spends
/// the reserve page.
#[test]
fn fault_with_map_count_used_up_is_contained() {
    let Some(out) = in_child("fault_with_map_count_used_up_is_contained", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("crowded.bin");
        write_file(&path, 4 * MIB);
        let map = map(&path);
        let registration = register(&map);
        truncate(&path, MIB, Truncator::ThisThread);
        let fillers = use_up_map_count();
        // SAFETY: `__errno_location` has no preconditions; it returns this thread's errno, valid while the
        // thread lives.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: `errno` points at this thread's errno: valid, aligned, touched by no other thread.
        unsafe { *errno = 4321 };
        black_box(map[2 * MIB]);
        // SAFETY: `errno` still points at this thread's errno, which the handler may have changed and restored.
        let errno_after = unsafe { *errno };
        println!("filler mappings: {}", fillers.len());
        for page in fillers {
            // SAFETY: each filler is a one-page mapping made by `use_up_map_count`, used by nothing.
            unsafe { libc::munmap(page, PAGE) };
        }
        assert_eq!(errno_after, 4321, "errno survives the failed mmap calls");
        assert!(registration.is_poisoned());
        // Which replacement worked depends on the kernel's map-count checks; both contain the fault.
        let prefix_kept = map[..MIB] == pattern(MIB)[..];
        println!("prefix kept: {prefix_kept}");
        assert_kept_then_zeros(&map, if prefix_kept { MIB } else { 0 });
        assert_eq!(
            RESERVE.load(Ordering::Relaxed),
            0,
            "the reserve page was spent"
        );
        drop(registration);
        let replenished = RESERVE.load(Ordering::Relaxed) != 0;
        assert!(
            replenished,
            "dropping a poisoned registration replenishes the reserve"
        );
    }) else {
        return;
    };
    assert_survived(&out);
}

/// Maps one-page mappings that cannot merge (alternating protections) until `mmap` fails.
fn use_up_map_count() -> Vec<*mut c_void> {
    let mut fillers = Vec::with_capacity(1 << 17);
    while fillers.len() < fillers.capacity() {
        let prot = [libc::PROT_READ, libc::PROT_NONE][fillers.len() % 2];
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
        let page = unsafe { libc::mmap(ptr::null_mut(), PAGE, prot, flags, -1, 0) };
        if page == libc::MAP_FAILED {
            break;
        }
        fillers.push(page);
    }
    fillers
}

#[test]
fn concurrent_readers_survive_truncation_by_another_thread() {
    let Some(out) = in_child(
        "concurrent_readers_survive_truncation_by_another_thread",
        || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("busy.bin");
            write_file(&path, 64 * MIB);
            let map = map(&path);
            let registration = register(&map);
            let truncated = AtomicBool::new(false);
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        // Keep sweeping all pages; finish with one full sweep after the truncation.
                        loop {
                            let last = truncated.load(Ordering::Acquire);
                            black_box(map.chunks(PAGE).map(|page| page[0] as u64).sum::<u64>());
                            if last {
                                break;
                            }
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
                truncate(&path, MIB, Truncator::ThisThread);
                truncated.store(true, Ordering::Release);
            });
            assert!(registration.is_poisoned());
            assert_kept_then_zeros(&map, MIB);
            println!("caught faults: {}", caught_faults());
        },
    ) else {
        return;
    };
    assert_survived(&out);
}

/// Runs `scenario` on a thread whose alternate signal stack is `altstack` (`None`: disabled).
fn on_thread_with_altstack(altstack: Option<usize>, scenario: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut memory = vec![0u8; altstack.unwrap_or(0)];
            let stack = libc::stack_t {
                ss_sp: memory.as_mut_ptr().cast(),
                ss_flags: if altstack.is_some() {
                    0
                } else {
                    libc::SS_DISABLE
                },
                ss_size: memory.len(),
            };
            // SAFETY: `memory` outlives every use of the stack: it is disabled again before it is freed.
            assert_eq!(unsafe { libc::sigaltstack(&stack, ptr::null_mut()) }, 0);
            scenario();
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling needs no memory.
            assert_eq!(unsafe { libc::sigaltstack(&disable, ptr::null_mut()) }, 0);
            drop(memory);
        });
    });
}

#[test]
fn fault_on_a_thread_without_altstack_is_contained() {
    let Some(out) = in_child("fault_on_a_thread_without_altstack_is_contained", || {
        on_thread_with_altstack(None, || {
            truncation_scenario(4 * MIB, MIB, Truncator::ThisThread, true);
        });
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn fault_on_a_small_altstack_is_contained() {
    let Some(out) = in_child("fault_on_a_small_altstack_is_contained", || {
        // SAFETY: getauxval has no preconditions.
        let minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
        // The handler's own frames need under 256 bytes beyond the kernel's signal frame (measured, debug).
        let size = minimum.max(libc::MINSIGSTKSZ) + 1024;
        on_thread_with_altstack(Some(size), || {
            truncation_scenario(4 * MIB, MIB, Truncator::ThisThread, true);
        });
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn fault_in_an_unregistered_mapping_kills_with_sigbus() {
    let Some(out) = in_child("fault_in_an_unregistered_mapping_kills_with_sigbus", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ours, foreign) = (dir.path().join("ours.bin"), dir.path().join("foreign.bin"));
        write_file(&ours, 4 * MIB);
        write_file(&foreign, 4 * MIB);
        let (ours_map, foreign_map) = (map(&ours), map(&foreign));
        let _registration = register(&ours_map);
        truncate(&foreign, MIB, Truncator::OtherProcess);
        println!("faulting");
        black_box(foreign_map[2 * MIB]);
    }) else {
        return;
    };
    assert_killed_by_sigbus(&out, "faulting");
}

#[test]
fn fault_after_unregistering_kills_with_sigbus() {
    let Some(out) = in_child("fault_after_unregistering_kills_with_sigbus", || {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dropped.bin");
        write_file(&path, 4 * MIB);
        let map = map(&path);
        drop(register(&map));
        truncate(&path, MIB, Truncator::ThisThread);
        println!("faulting");
        black_box(map[2 * MIB]);
    }) else {
        return;
    };
    assert_killed_by_sigbus(&out, "faulting");
}

extern "C" fn user_siginfo_handler(_: c_int, info: *mut siginfo_t, _: *mut c_void) {
    // SAFETY: the kernel's siginfo, passed on unchanged by the guard.
    let code = unsafe { (*info).si_code };
    let message: &[u8] = if code == libc::BUS_ADRERR {
        b"user handler: BUS_ADRERR\n"
    } else {
        b"user handler: other code\n"
    };
    // SAFETY: write is async-signal-safe, and `message` is valid for `message.len()` bytes during the call.
    unsafe { libc::write(1, message.as_ptr().cast(), message.len()) };
    // SAFETY: _exit is async-signal-safe and takes only a status; ending the process here is the test.
    unsafe { libc::_exit(42) }
}

extern "C" fn user_plain_handler(_: c_int) {
    let message = b"plain user handler\n";
    // SAFETY: write is async-signal-safe, and `message` is valid for `message.len()` bytes during the call.
    unsafe { libc::write(1, message.as_ptr().cast(), message.len()) };
    // SAFETY: _exit is async-signal-safe and takes only a status; ending the process here is the test.
    unsafe { libc::_exit(43) }
}

fn set_sigbus_action(handler: libc::sighandler_t, flags: c_int) {
    // SAFETY: `libc::sigaction` is a plain C struct for which all-zero is a valid value.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    // SAFETY: `action` is valid and outlives the call; every handler passed here has the signature `flags`
    // says (SA_SIGINFO or not), or is SIG_DFL/SIG_IGN; a null old action asks for nothing back.
    let set = unsafe { libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) };
    assert_eq!(set, 0);
}

/// Contains a fault in a registered mapping, then faults in an unregistered one.
fn contained_then_foreign_fault() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ours, foreign) = (dir.path().join("ours.bin"), dir.path().join("foreign.bin"));
    write_file(&ours, 4 * MIB);
    write_file(&foreign, 4 * MIB);
    let (ours_map, foreign_map) = (map(&ours), map(&foreign));
    let registration = register(&ours_map);
    truncate(&ours, MIB, Truncator::ThisThread);
    truncate(&foreign, MIB, Truncator::ThisThread);
    black_box(ours_map[2 * MIB]);
    assert!(registration.is_poisoned());
    println!("contained");
    black_box(foreign_map[2 * MIB]);
}

#[test]
fn previous_siginfo_handler_receives_foreign_faults() {
    let Some(out) = in_child("previous_siginfo_handler_receives_foreign_faults", || {
        let handler = user_siginfo_handler as extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
        set_sigbus_action(handler as libc::sighandler_t, libc::SA_SIGINFO);
        assert!(install());
        contained_then_foreign_fault();
    }) else {
        return;
    };
    assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
    assert!(stdout_has(&out, "contained"), "{}", describe(&out));
    assert!(
        stdout_has(&out, "user handler: BUS_ADRERR"),
        "{}",
        describe(&out)
    );
}

#[test]
fn previous_plain_handler_receives_foreign_faults() {
    let Some(out) = in_child("previous_plain_handler_receives_foreign_faults", || {
        let handler = user_plain_handler as extern "C" fn(c_int);
        set_sigbus_action(handler as libc::sighandler_t, 0);
        assert!(install());
        contained_then_foreign_fault();
    }) else {
        return;
    };
    assert_eq!(out.status.code(), Some(43), "{}", describe(&out));
    assert!(
        stdout_has(&out, "contained") && stdout_has(&out, "plain user handler"),
        "{}",
        describe(&out)
    );
}

#[test]
fn sent_sigbus_with_default_previous_action_kills() {
    let Some(out) = in_child("sent_sigbus_with_default_previous_action_kills", || {
        set_sigbus_action(libc::SIG_DFL, 0);
        assert!(install());
        println!("raising");
        // SAFETY: raise has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGBUS) };
    }) else {
        return;
    };
    assert_killed_by_sigbus(&out, "raising");
}

#[test]
fn ignored_previous_action_ignores_sent_sigbus_but_not_faults() {
    let Some(out) = in_child(
        "ignored_previous_action_ignores_sent_sigbus_but_not_faults",
        || {
            set_sigbus_action(libc::SIG_IGN, 0);
            assert!(install());
            // SAFETY: raise has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGBUS) };
            assert!(
                sigbus_protection_active(),
                "an ignored signal leaves the handler in place"
            );
            contained_then_foreign_fault();
        },
    ) else {
        return;
    };
    assert_killed_by_sigbus(&out, "contained");
}

#[test]
fn replaced_handler_is_reported() {
    let Some(out) = in_child("replaced_handler_is_reported", || {
        assert_eq!(protection(), Protection::NotInstalled);
        assert!(!sigbus_protection_active());
        assert!(install());
        assert!(install(), "installing twice keeps it active");
        assert_eq!(protection(), Protection::Active);
        let handler = user_plain_handler as extern "C" fn(c_int);
        set_sigbus_action(handler as libc::sighandler_t, 0);
        assert!(!sigbus_protection_active());
        assert!(
            !install(),
            "install does not fight another library for the signal"
        );
        let status = protection();
        assert_eq!(
            status,
            Protection::Replaced {
                handler: handler as usize
            }
        );
        println!("{status}");
    }) else {
        return;
    };
    assert_survived(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sigbus protection was lost"));
}

/// The handler scans the whole registry: a fault in the mapping that fills its last free slot is contained
/// like any other (what the former `measure_contained_fault` checked besides its timings).
#[test]
fn fault_with_every_slot_live_is_contained() {
    let Some(out) = in_child("fault_with_every_slot_live_is_contained", || {
        let fillers = MmapOptions::new()
            .len((CAPACITY - 1) * PAGE)
            .map_anon()
            .expect("anon map");
        let fillers = fillers.make_read_only().expect("read-only");
        let held: Vec<_> = fillers.chunks(PAGE).map(register).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("last.bin");
        write_file(&path, 2 * PAGE);
        let map = map(&path);
        let registration = register(&map);
        // SAFETY: `map` is a read-only file mapping the test owns and keeps until the end of the closure; the
        // registry is full, so it is refused and nothing is registered.
        assert!(unsafe { Registration::new(map.as_ptr(), map.len()) }.is_none());
        truncate(&path, PAGE, Truncator::ThisThread);
        assert_kept_then_zeros(&map, PAGE);
        assert!(registration.is_poisoned());
        drop((registration, held));
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn full_registry_refuses_until_a_slot_frees() {
    let Some(out) = in_child("full_registry_refuses_until_a_slot_frees", || {
        let pages = MmapOptions::new()
            .len(CAPACITY * PAGE)
            .map_anon()
            .expect("anon map");
        let pages = pages.make_read_only().expect("read-only");
        let mut registrations: Vec<_> = pages.chunks(PAGE).map(register).collect();
        // SAFETY: `pages` is a read-only anonymous mapping the test owns and keeps until the end of the
        // closure; the registry is full, so it is refused and nothing is registered.
        assert!(unsafe { Registration::new(pages.as_ptr(), PAGE) }.is_none());
        let freed = registrations.swap_remove(1234).index;
        let again = register(&pages[..PAGE]);
        assert_eq!(again.index, freed);
        drop(again);
        drop(registrations);
    }) else {
        return;
    };
    assert_survived(&out);
}

#[test]
fn empty_and_overflowing_ranges_are_refused() {
    // SAFETY: an empty range is refused before anything is registered, so no mapping is needed.
    assert!(unsafe { Registration::new(ptr::dangling(), 0) }.is_none());
    // SAFETY: a range whose end overflows is refused before anything is registered.
    assert!(unsafe { Registration::new(usize::MAX as *const u8, 2) }.is_none());
}

#[test]
fn unregistering_frees_the_slot_for_the_next_generation() {
    let pages = MmapOptions::new().len(PAGE).map_anon().expect("anon map");
    let pages = pages.make_read_only().expect("read-only");
    let registration = register(&pages);
    let (index, seq) = (registration.index, registration.seq);
    assert_eq!(seq & STATE_MASK, LIVE);
    assert!(!registration.is_poisoned());
    let inside = pages.as_ptr() as usize + 10;
    assert_eq!(
        REGISTRY[index].live_range_holding(inside).map(|(s, _)| s),
        Some(pages.as_ptr() as usize)
    );
    assert_eq!(REGISTRY[index].live_range_holding(inside + PAGE), None);
    drop(registration);
    assert_eq!(REGISTRY[index].live_range_holding(inside), None);
    assert!(
        REGISTRY[index].seq.load(Ordering::Relaxed) >= seq + 2,
        "generations only grow"
    );
}

/// The kernel, copying out of a truncated mapping for a system call, fails the call with EFAULT instead of
/// raising SIGBUS: the registration is not poisoned, and the caller must treat the error as the same event.
#[test]
fn kernel_copies_from_a_truncated_mapping_fail_with_efault() {
    let Some(out) = in_child(
        "kernel_copies_from_a_truncated_mapping_fail_with_efault",
        || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("sent.bin");
            write_file(&path, 4 * PAGE);
            let map = map(&path);
            let registration = register(&map);
            truncate(&path, PAGE, Truncator::OtherProcess);
            let (mut socket, _peer) = std::os::unix::net::UnixStream::pair().expect("socket pair");
            let sent = socket.write(&map[2 * PAGE..3 * PAGE]);
            assert_eq!(sent.map_err(|e| e.raw_os_error()), Err(Some(libc::EFAULT)));
            let mut sink = tempfile::tempfile().expect("temp file");
            let written = sink.write(&map[2 * PAGE..]);
            assert_eq!(
                written.map_err(|e| e.raw_os_error()),
                Err(Some(libc::EFAULT))
            );
            assert!(!registration.is_poisoned());
            assert_eq!(caught_faults(), 0);
        },
    ) else {
        return;
    };
    assert_survived(&out);
}

/// How the main crate composes it: one owner holding the registration before the map, behind `Bytes`.
#[test]
fn bytes_owner_keeps_registration_until_the_last_slice() {
    struct Guarded {
        registration: Registration, // dropped first: fields drop in declaration order
        map: Mmap,
    }
    struct Shared(Arc<Guarded>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            &self.0.map
        }
    }
    let Some(out) = in_child(
        "bytes_owner_keeps_registration_until_the_last_slice",
        || {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("owned.bin");
            write_file(&path, 4 * MIB);
            let map = map(&path);
            let guarded = Arc::new(Guarded {
                registration: register(&map),
                map,
            });
            let index = guarded.registration.index;
            let body = bytes::Bytes::from_owner(Shared(Arc::clone(&guarded)));
            let tail = body.slice(3 * MIB..);
            drop(body);
            truncate(&path, MIB, Truncator::OtherProcess);
            assert!(tail.iter().all(|&b| b == 0));
            assert!(guarded.registration.is_poisoned());
            drop((guarded, tail));
            assert_eq!(
                REGISTRY[index].seq.load(Ordering::Relaxed) & STATE_MASK,
                FREE
            );
        },
    ) else {
        return;
    };
    assert_survived(&out);
}
