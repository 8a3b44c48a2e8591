// SPDX-License-Identifier: GPL-2.0

//! Jobs: the atomic operations user space submits, executed by the device's engines.
//!
//! A job is a list of commands, each a run of one operation over addresses a stride apart.
//! An engine executes them in order: each page through its TLB and the device page table;
//! a miss writes a fault record and stalls the job until the fault worker has serviced it,
//! then the access replays, or the command ends with the fault's error. The submitter waits
//! for the job to complete and reads each command's outcome.

use crate::{
    engine::{
        EngineUse,
        Engines, //
    },
    fault_buffer::Context,
    ops::{
        self,
        Op,
        Width, //
    },
    stats::{
        count_fault,
        FileStats, //
    },
};
use kernel::{
    new_condvar, new_mutex,
    page::{
        PAGE_MASK,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        CondVar,
        CondVarTimeoutResult,
        Mutex, //
    },
    time::{
        Delta,
        Instant,
        Jiffies,
        Monotonic, //
    },
};

/// How long one access keeps faulting before its command gives up with `EBUSY`.
const OP_DEADLINE: Delta = Delta::from_millis(2000);

/// Operations of one command an engine runs on a page before it lets the CPU and the other
/// devices in (a stride of 0 keeps it on one page).
const BURST: usize = 512;

/// Most pages whose faults one wave of accesses reports at once.
const WAVE: usize = 32;

/// Most operations a wave looks at for its pages.
const WAVE_SCAN: usize = 4 * WAVE;

/// The pages of one wave of accesses.
struct Wave {
    pages: [usize; WAVE],
    len: usize,
}

/// One command: `count` operations `op`, `stride` bytes apart from `addr`.
///
/// The fields are checked when the command is made: each address is naturally aligned for
/// `width`, and the last one fits in the address space.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Command {
    pub(crate) op: Op,
    pub(crate) width: Width,
    pub(crate) addr: usize,
    pub(crate) stride: usize,
    pub(crate) count: usize,
    pub(crate) operand: u64,
    pub(crate) compare: u64,
}

/// What a command did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Outcome {
    /// The old value of the one operation, or the wrapping sum of the old values.
    pub(crate) value: u64,
    /// Operations done.
    pub(crate) done: u64,
    /// Device faults taken.
    pub(crate) faults: u64,
    /// 0, or the `-errno` that ended the command.
    pub(crate) error: i32,
}

/// A job's outcomes, and whether they are final.
struct State {
    outcomes: KVec<Outcome>,
    complete: bool,
}

/// A job of one process on one device.
#[pin_data]
pub(crate) struct Job {
    ctx: Arc<Context>,
    /// The address space number of `ctx`'s page table.
    asid: u64,
    file: Arc<FileStats>,
    commands: KVec<Command>,
    /// Set by [`Job::cancel`]: the remaining operations fail with `ECANCELED`.
    cancelled: Atomic<bool>,
    #[pin]
    state: Mutex<State>,
    #[pin]
    completed: CondVar,
}

impl Job {
    /// A job running `commands` in `ctx`, counted in `file`.
    pub(crate) fn new(
        ctx: Arc<Context>,
        file: Arc<FileStats>,
        commands: KVec<Command>,
    ) -> Result<Arc<Self>> {
        // Allocated here: the engine only fills them in.
        let mut outcomes = KVec::with_capacity(commands.len(), GFP_KERNEL)?;
        outcomes.resize(commands.len(), Outcome::default(), GFP_KERNEL)?;
        let asid = ctx.with_page_table(|pt| pt.asid());
        Arc::pin_init(
            pin_init!(Self {
                ctx,
                asid,
                file,
                commands,
                cancelled: Atomic::new(false),
                state <- new_mutex!(State {
                    outcomes,
                    complete: false,
                }),
                completed <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }

    /// The context the job runs in.
    pub(crate) fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Tells the engine running the job to stop: each operation it has not started fails with
    /// `ECANCELED`. An access in progress finishes (up to [`BURST`] operations on a page), and
    /// so does a fault the job stalls on.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Relaxed);
    }

    /// Waits, interruptibly, until the job is complete: `false` if a signal came first.
    pub(crate) fn wait_interruptible(&self) -> bool {
        let mut state = self.state.lock();
        while !state.complete {
            if self.completed.wait_interruptible(&mut state) {
                return false;
            }
        }
        true
    }

    /// Waits until the job is complete, then returns `f` of its outcomes.
    pub(crate) fn wait<R>(&self, f: impl FnOnce(&[Outcome]) -> R) -> R {
        let mut state = self.state.lock();
        while !state.complete {
            self.completed.wait(&mut state);
        }
        f(&state.outcomes)
    }

    /// Waits, interruptibly, until the job is complete or `timeout` has passed: `ETIME` if it
    /// has not completed by then, `EINTR` if a signal came first.
    pub(crate) fn wait_timeout(&self, timeout: Jiffies) -> Result {
        let mut state = self.state.lock();
        let mut left = timeout;
        while !state.complete {
            if left == 0 {
                return Err(ETIME);
            }
            left = match self.completed.wait_interruptible_timeout(&mut state, left) {
                CondVarTimeoutResult::Timeout => 0,
                CondVarTimeoutResult::Woken { jiffies } => jiffies,
                CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            };
        }
        Ok(())
    }

    /// A copy of the outcomes of a complete job.
    pub(crate) fn outcomes(&self) -> Result<KVec<Outcome>> {
        let state = self.state.lock();
        let mut copy = KVec::with_capacity(state.outcomes.len(), GFP_KERNEL)?;
        copy.extend_from_slice(&state.outcomes, GFP_KERNEL)?;
        Ok(copy)
    }

    /// Completes the job without running it: every command ends with `err`.
    pub(crate) fn abort(&self, err: Error) {
        let mut state = self.state.lock();
        for out in state.outcomes.iter_mut() {
            out.error = err.to_errno();
        }
        state.complete = true;
        self.completed.notify_all();
    }

    /// Executes the job on `engine`, then completes it.
    pub(crate) fn run(&self, engine: &EngineUse<'_>) {
        let mut outcomes = core::mem::take(&mut self.state.lock().outcomes);
        let window = crate::rmw_window();
        for (index, out) in outcomes.iter_mut().enumerate() {
            *out = self.execute(engine, index, window);
        }
        let mut state = self.state.lock();
        state.outcomes = outcomes;
        state.complete = true;
        self.completed.notify_all();
    }

    /// The pages of a wave of accesses, from operation `i` of command `index` on: up to
    /// [`WAVE`] distinct pages of the next operations of the job, the first page first,
    /// then those the device page table has no atomic entry for.
    fn wave(&self, index: usize, i: usize) -> Wave {
        let mut wave = Wave {
            pages: [0; WAVE],
            len: 0,
        };
        let ops = self.commands[index..]
            .iter()
            .enumerate()
            .flat_map(|(k, c)| {
                let first = if k == 0 { i } else { 0 };
                (first..c.count).map(move |j| (c.addr + j * c.stride) & PAGE_MASK)
            });
        for page in ops.take(WAVE_SCAN) {
            if wave.len == WAVE {
                break;
            }
            if !wave.pages[..wave.len].contains(&page) {
                wave.pages[wave.len] = page;
                wave.len += 1;
            }
        }
        // The first page faulted; of the others, keep those that would.
        let mut kept = 1;
        self.ctx.with_page_table(|pt| {
            for k in 1..wave.len {
                if pt.walk(wave.pages[k]).is_none() {
                    wave.pages[kept] = wave.pages[k];
                    kept += 1;
                }
            }
        });
        wave.len = kept.min(wave.len);
        wave
    }

    /// Executes command `index` on `engine`.
    fn execute(&self, engine: &EngineUse<'_>, index: usize, window: Delta) -> Outcome {
        let cmd = &self.commands[index];
        let engines: &Engines = engine.engines();
        let mut out = Outcome::default();
        let mut i = 0;
        while i < cmd.count {
            if self.cancelled.load(Relaxed) {
                out.error = ECANCELED.to_errno();
                return out;
            }
            let page = (cmd.addr + i * cmd.stride) & PAGE_MASK;
            let start = Instant::<Monotonic>::now();
            let mut faults = 0;
            let (done, part) = loop {
                // The operations of the command that fall in this page, in one access.
                let burst = engines.access(engine, &self.ctx, self.asid, page, |p| {
                    let (mut j, mut part) = (i, 0u64);
                    while j < cmd.count {
                        let a = cmd.addr + j * cmd.stride;
                        if a & PAGE_MASK != page || j - i >= BURST {
                            break;
                        }
                        let offset = a % PAGE_SIZE;
                        let old = ops::run(
                            p,
                            offset,
                            cmd.width,
                            cmd.op,
                            cmd.operand,
                            cmd.compare,
                            window,
                        )?;
                        part = part.wrapping_add(old);
                        j += 1;
                    }
                    Ok::<_, Error>((j, part))
                });
                match burst {
                    Some(Ok(r)) => break r,
                    Some(Err(e)) => {
                        out.error = e.to_errno();
                        return out;
                    }
                    None => {}
                }
                if self.cancelled.load(Relaxed) {
                    out.error = ECANCELED.to_errno();
                    return out;
                }
                if faults > 0 && start.elapsed() > OP_DEADLINE {
                    out.error = EBUSY.to_errno();
                    return out;
                }
                faults += 1;
                out.faults += 1;
                // A miss: records in the device's fault buffer, for this page and the other
                // pages the job's next accesses would miss, as a GPU's engine issues the
                // accesses of many threads at once; the job stalls until the fault worker has
                // serviced them, then the access replays.
                let wave = self.wave(index, i);
                let fault = || {
                    engines
                        .faults
                        .fault(&self.ctx, &self.file, &wave.pages[..wave.len])
                };
                if let Err(e) = count_fault(&self.file.faults, &engines.stats, fault) {
                    out.error = e.to_errno();
                    return out;
                }
            };
            let n = (done - i) as u64;
            self.file.ops.fetch_add(n, Relaxed);
            engines.stats.ops.fetch_add(n, Relaxed);
            engines.count_ops(engine, n);
            out.value = out.value.wrapping_add(part);
            out.done += n;
            i = done;
        }
        out
    }
}
