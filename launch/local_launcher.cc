#include "launch/local_launcher.h"

#include "launch/job_auth.h"
#include "launch/net_iface.h"
#include "launch/timeline_flags.h"

#include "common/exit_codes.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>

namespace tessera::launch {

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  unsigned char b = static_cast<unsigned char>(sig);
  ssize_t n = write(g_signal_pipe[1], &b, 1);
  (void)n;
}

struct Child {
  std::string name;      // "worker 1"
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1;       // read ends of the child's stdout / stderr
  int err_fd = -1;
  std::string out_buf, err_buf;
  bool exited = false;
  int status = 0;
};

std::string RoleName(int rank, int servers) {
  if (rank == 0) return "coordinator";
  if (rank <= servers) return "server " + std::to_string(rank - 1);
  return "worker " + std::to_string(rank - 1 - servers);
}

// The coordinator's listening socket, made here rather than in the coordinator: bound to
// port 0 on loopback (the kernel picks a free port) and listening before any child runs,
// so the port every child is told is held from the start and no other process can take
// it (picking a port, closing it and letting the child bind it later raced).
// The coordinator inherits the fd (TESSERA_COORDINATOR_FD) and ZeroMQ adopts it.
struct ListeningSocket {
  int fd = -1;
  int port = 0;
};

Result<ListeningSocket> ListenOnLoopback() {
  ListeningSocket l;
  l.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return Status::IOError(std::string("socket: ") + strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(l.fd, SOMAXCONN) != 0 ||
      getsockname(l.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Status st = Status::IOError(std::string("binding a loopback port for the coordinator: ") + strerror(errno));
    close(l.fd);
    return st;
  }
  l.port = ntohs(a.sin_port);
  return l;
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "tessera";
  buf[n] = '\0';
  return buf;
}

// Writes complete lines of `buf` with the child's prefix; keeps the unfinished tail.
void FlushLines(const Child& c, std::string* buf, FILE* out, bool all) {
  size_t start = 0;
  for (;;) {
    size_t nl = buf->find('\n', start);
    if (nl == std::string::npos) break;
    std::fprintf(out, "[%s] %.*s\n", c.name.c_str(), static_cast<int>(nl - start), buf->data() + start);
    start = nl + 1;
  }
  buf->erase(0, start);
  if (all && !buf->empty()) {
    std::fprintf(out, "[%s] %s\n", c.name.c_str(), buf->c_str());
    buf->clear();
  }
  std::fflush(out);
}

bool Drain(int* fd, const Child& c, std::string* buf, FILE* out) {
  char tmp[8192];
  ssize_t n = read(*fd, tmp, sizeof(tmp));
  if (n > 0) {
    buf->append(tmp, static_cast<size_t>(n));
    FlushLines(c, buf, out, false);
    return true;
  }
  if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    FlushLines(c, buf, out, true);
    close(*fd);
    *fd = -1;
  }
  return false;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended with status " + std::to_string(status);
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// `inherit_fd` (>= 0): a close-on-exec fd the child keeps across exec.
Status Spawn(Child* c, const std::string& program, const std::vector<std::string>& args,
             const std::vector<std::string>& env_add, int inherit_fd = -1) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Status::IOError(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    // Own process group: a terminal's Ctrl-C reaches only the launcher, which forwards it.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // launcher died between fork and prctl
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    if (inherit_fd >= 0) fcntl(inherit_fd, F_SETFD, 0);
    for (const auto& kv : env_add) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(program.c_str(), argv.data());  // a bare name ("mpirun") is looked up in PATH
    std::fprintf(stderr, "exec %s: %s\n", program.c_str(), strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  c->pid = pid;
  c->out_fd = out[0];
  c->err_fd = err[0];
  return Status::OK();
}


}  // namespace

ChildCommand ChildCommandFor(const LocalLaunchOptions& o, const ChildRun& run, int r) {
  ChildCommand cmd;
  const bool mpi_workers = o.mpi_workers && o.workers > 1;
  const bool mpirun_child = mpi_workers && r == 1 + o.servers;
  cmd.name = mpirun_child ? "workers" : RoleName(r, o.servers);
  std::vector<std::string> args;
  if (!o.subcommand.empty()) args.push_back(o.subcommand);
  for (const auto& a : o.job_args) args.push_back(a);
  args.push_back("--servers=" + std::to_string(o.servers));
  args.push_back("--workers=" + std::to_string(o.workers));
  cmd.env = {
      "TESSERA_WORLD_SIZE=" + std::to_string(run.world),
      "TESSERA_COORDINATOR_HOST=127.0.0.1",
      "TESSERA_COORDINATOR_PORT=" + std::to_string(run.port),
      "TESSERA_JOB_ID=" + std::to_string(run.job_id),
      "TESSERA_RESTART_COUNT=" + std::to_string(run.restart),
  };
  if (!run.key_file.empty()) cmd.env.push_back(std::string(kAuthKeyFileEnv) + "=" + run.key_file);
  cmd.exe = run.program;
  if (mpirun_child) {
    cmd.env.push_back("TESSERA_RANK_BASE=" + std::to_string(r));
    if (geteuid() == 0) {  // Open MPI refuses root without both (docs/collective.md)
      cmd.env.push_back("OMPI_ALLOW_RUN_AS_ROOT=1");
      cmd.env.push_back("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1");
    }
    // mpi_yield_when_idle: a rank waiting in MPI yields the core instead of spinning,
    // which the compute thread next to the communication thread needs when workers
    // share cores (measured 2.5-5x faster steps on the 2-core VM, docs/collective.md).
    std::vector<std::string> m = {"-np", std::to_string(o.workers), "--oversubscribe", "--bind-to", "none",
                                  "--mca", "btl", "self,vader", "--mca", "mpi_yield_when_idle", "1"};
    for (const char* v : {"TESSERA_RANK_BASE", "TESSERA_WORLD_SIZE", "TESSERA_COORDINATOR_HOST",
                          "TESSERA_COORDINATOR_PORT", "TESSERA_JOB_ID", "TESSERA_RESTART_COUNT"}) {
      m.push_back("-x");
      m.push_back(v);
    }
    if (!run.key_file.empty()) {
      m.push_back("-x");
      m.push_back(kAuthKeyFileEnv);
    }
    m.push_back(run.program);
    for (auto& a : args) m.push_back(a);
    args = std::move(m);
    cmd.exe = o.mpirun;
  } else {
    cmd.env.push_back("TESSERA_RANK=" + std::to_string(r));
    cmd.env.push_back("TESSERA_LOCAL_RANK=" + std::to_string(r));
  }
  cmd.args = std::move(args);
  if (r == 0 && run.listen_fd >= 0) {
    cmd.inherit_fd = run.listen_fd;
    cmd.env.push_back("TESSERA_COORDINATOR_FD=" + std::to_string(run.listen_fd));
  }
  return cmd;
}

namespace {

struct RunOutcome {
  int exit_code = 0;
  bool signalled = false;  // the launcher itself got a signal: a stop request, never restarted
};

// Forwards the launcher's signals, relays the children's output, and stops the job when
// one child fails (SIGTERM, then SIGKILL after the grace period), until every child exited.
RunOutcome Supervise(std::vector<Child>& kids, const LocalLaunchOptions& o, int world) {
  const int num_kids = static_cast<int>(kids.size());
  int exit_code = 0;
  bool stopping = false;
  int signals_seen = 0;
  // A job killed on a second SIGTERM still ends "preempted": its last complete
  // checkpoint is intact, so batch scripts requeue it (docs/checkpoints.md).
  bool killed_on_second_signal = false;
  std::chrono::steady_clock::time_point kill_at{};
  int running = num_kids;
  // Each child leads its own process group: signal the group so its children go too.
  auto stop_all = [&](int sig) {
    for (auto& k : kids) if (!k.exited) kill(-k.pid, sig);
  };
  std::chrono::steady_clock::time_point drain_until{};

  while (running > 0 || std::any_of(kids.begin(), kids.end(), [](const Child& k) { return k.out_fd >= 0 || k.err_fd >= 0; })) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, bool>> who;  // (child index, is stderr)
    fds.push_back({g_signal_pipe[0], POLLIN, 0});
    who.push_back({-1, false});
    for (int i = 0; i < num_kids; ++i) {
      if (kids[i].out_fd >= 0) { fds.push_back({kids[i].out_fd, POLLIN, 0}); who.push_back({i, false}); }
      if (kids[i].err_fd >= 0) { fds.push_back({kids[i].err_fd, POLLIN, 0}); who.push_back({i, true}); }
    }
    poll(fds.data(), fds.size(), 100);
    for (size_t f = 0; f < fds.size(); ++f) {
      if (!(fds[f].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (who[f].first < 0) {
        unsigned char sig;
        while (read(g_signal_pipe[0], &sig, 1) == 1) {
          ++signals_seen;
          if (signals_seen == 1 || sig == SIGUSR1) {
            std::fprintf(stderr, "tessera launch: got signal %d (%s), forwarding to the job\n", sig, strsignal(sig));
            stop_all(sig);
          } else {
            std::fprintf(stderr, "tessera launch: second signal, killing the job\n");
            stop_all(SIGKILL);
            killed_on_second_signal = true;
          }
          if (sig != SIGUSR1 && !stopping) {
            stopping = true;
            kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(o.grace_s + 60);
          }
        }
        continue;
      }
      Child& c = kids[who[f].first];
      if (who[f].second) Drain(&c.err_fd, c, &c.err_buf, stderr);
      else Drain(&c.out_fd, c, &c.out_buf, stdout);
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      for (auto& c : kids) {
        if (c.pid != pid || c.exited) continue;
        c.exited = true;
        c.status = status;
        --running;
        bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (failed && exit_code == 0) {
          exit_code = ExitCodeOf(status);
          if (!stopping) {
            std::fprintf(stderr, "tessera launch: %s (rank %d, pid %d) %s; stopping the job\n",
                         c.name.c_str(), c.rank, c.pid, DescribeExit(status).c_str());
            stopping = true;
            stop_all(SIGTERM);
            kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(o.grace_s);
          }
        }
      }
    }
    // A grandchild may hold a pipe open after its parent exited: drain briefly, then stop reading.
    if (running == 0) {
      auto now = std::chrono::steady_clock::now();
      if (drain_until == std::chrono::steady_clock::time_point{}) drain_until = now + std::chrono::seconds(2);
      if (now >= drain_until) {
        for (auto& k : kids) {
          if (k.out_fd >= 0) { FlushLines(k, &k.out_buf, stdout, true); close(k.out_fd); k.out_fd = -1; }
          if (k.err_fd >= 0) { FlushLines(k, &k.err_buf, stderr, true); close(k.err_fd); k.err_fd = -1; }
          kill(-k.pid, SIGKILL);
        }
      }
    }
    if (stopping && running > 0 && std::chrono::steady_clock::now() >= kill_at) {
      std::fprintf(stderr, "tessera launch: %d process(es) still running after %d s, killing them\n",
                   running, o.grace_s);
      stop_all(SIGKILL);
      kill_at = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
  }
  if (killed_on_second_signal && exit_code != 0) exit_code = kExitPreempted;
  if (exit_code == 0) std::fprintf(stderr, "tessera launch: all %d processes exited cleanly\n", world);
  else std::fprintf(stderr, "tessera launch: job failed with exit code %d\n", exit_code);
  return {exit_code, signals_seen > 0};
}

// One run of the whole job. `restart` is 0 for the first run.
RunOutcome RunOnce(const LocalLaunchOptions& o, int restart, uint64_t job_id, const std::string& key_file) {
  const int world = 1 + o.servers + o.workers;
  ListeningSocket listener;
  if (o.coordinator_port == 0) {
    auto l = ListenOnLoopback();
    if (!l.ok()) {
      std::fprintf(stderr, "tessera launch: %s\n", l.status().ToString().c_str());
      return {1, false};
    }
    listener = *l;
  }
  const int port = o.coordinator_port ? o.coordinator_port : listener.port;
  const std::string program = o.program.empty() ? SelfExe() : o.program;

  std::fprintf(stderr, "tessera launch: job %llu%s: 1 coordinator, %d servers, %d workers on 127.0.0.1:%d\n",
               static_cast<unsigned long long>(job_id),
               restart > 0 ? (" restart " + std::to_string(restart)).c_str() : "", o.servers, o.workers, port);
  // --sync=allreduce|hybrid: the workers run as ONE `mpirun -np W` child, so they share
  // an MPI world (docs/collective.md); each finds its rank from TESSERA_RANK_BASE plus its
  // MPI rank. The coordinator and servers stay plain processes outside MPI.
  const bool mpi_workers = o.mpi_workers && o.workers > 1;
  const int num_kids = mpi_workers ? 1 + o.servers + 1 : world;
  if (mpi_workers) std::fprintf(stderr, "tessera launch: workers run under mpirun (all-reduce path)\n");
  std::vector<Child> kids(num_kids);
  const ChildRun run{world, port, job_id, restart, key_file, program, listener.fd};
  for (int r = 0; r < num_kids; ++r) {
    Child& c = kids[r];
    c.rank = r;
    ChildCommand cmd = ChildCommandFor(o, run, r);
    c.name = cmd.name;
    Status st = Spawn(&c, cmd.exe, cmd.args, cmd.env, cmd.inherit_fd);
    // The coordinator holds the port now; the launcher's copy would keep it open after
    // the coordinator died, and peers would connect to nobody.
    if (r == 0 && listener.fd >= 0) close(std::exchange(listener.fd, -1));
    if (!st.ok()) {
      std::fprintf(stderr, "tessera launch: could not start %s: %s\n", c.name.c_str(), st.ToString().c_str());
      for (auto& k : kids) if (k.pid > 0) kill(k.pid, SIGKILL);
      return {1, false};
    }
  }

  return Supervise(kids, o, world);
}

// Like torchrun: a failed job is worth another run (from its newest complete checkpoint,
// which `tessera train` resumes by default), but not a configuration error (it would
// fail again), a preempted job (it was asked to stop) or a job the user stopped.
bool WorthRestarting(const RunOutcome& r) {
  return r.exit_code != 0 && r.exit_code != kExitConfig && r.exit_code != kExitPreempted && !r.signalled;
}

}  // namespace

int RunLocalJob(const LocalLaunchOptions& o) {
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "tessera launch: pipe: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::random_device rd;
  // One job id for every run: restarts are the same job (as under Slurm requeue).
  const uint64_t job_id = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(getpid());
  // The job's CURVE key: private to this user, shared by every run of the job, removed
  // when the launcher ends. Children read it through $TESSERA_AUTH_KEY_FILE (an
  // --auth_key_file in the job arguments takes precedence; --auth=none ignores it).
  std::string key_file;
  if (wire::CurveAvailable()) {
    auto k = CreateLaunchKeyFile();
    if (!k.ok()) {
      std::fprintf(stderr, "tessera launch: %s\n", k.status().ToString().c_str());
      return 1;
    }
    key_file = *k;
  }
  for (int restart = 0;; ++restart) {
    RunOutcome r = RunOnce(o, restart, job_id, key_file);
    if (!WorthRestarting(r) || restart >= o.max_restarts) {
      if (r.exit_code != 0 && WorthRestarting(r) && o.max_restarts > 0) {
        std::fprintf(stderr, "tessera launch: giving up after %d restart(s)\n", restart);
      }
      if (!key_file.empty()) RemoveLaunchKeyFile(key_file);
      return r.exit_code;
    }
    std::fprintf(stderr, "tessera launch: restarting the whole job (restart %d of %d)\n", restart + 1,
                 o.max_restarts);
  }
}

Result<LocalLaunchOptions> ParseLaunchArgs(int argc, char** argv) {
  LocalLaunchOptions o;
  auto int_value = [](const std::string& name, const std::string& v, int lo, int hi) -> Result<int> {
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || x < lo || x > hi) {
      return Status::InvalidArgument("--" + name + "=" + v + ": expected an integer in [" +
                                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return static_cast<int>(x);
  };
  bool passthrough = false;
  bool subcommand_given = false;
  std::vector<std::string> after;  // the arguments after "--"
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (passthrough) { after.push_back(a); continue; }
    if (a == "--") { passthrough = true; continue; }
    std::string name, value;
    bool ours = false;
    if (a == "--sync=allreduce" || a == "--sync=hybrid" ||
        (a == "--sync" && i + 1 < argc && (!std::strcmp(argv[i + 1], "allreduce") || !std::strcmp(argv[i + 1], "hybrid")))) {
      o.mpi_workers = true;  // still handed to the children below
    }
    for (const char* f : {"servers", "workers", "grace_s", "coordinator_port", "program", "subcommand", "max_restarts", "mpirun"}) {
      std::string flag = std::string("--") + f;
      if (a == flag) {
        if (i + 1 >= argc) return Status::InvalidArgument(flag + " needs a value");
        name = f; value = argv[++i]; ours = true; break;
      }
      if (a.rfind(flag + "=", 0) == 0) { name = f; value = a.substr(flag.size() + 1); ours = true; break; }
    }
    if (!ours) { o.job_args.push_back(a); continue; }
    if (name == "servers") { TESSERA_ASSIGN_OR_RETURN(o.servers, int_value(name, value, 1, 256)); }
    else if (name == "workers") { TESSERA_ASSIGN_OR_RETURN(o.workers, int_value(name, value, 1, 1024)); }
    else if (name == "grace_s") { TESSERA_ASSIGN_OR_RETURN(o.grace_s, int_value(name, value, 0, 3600)); }
    else if (name == "coordinator_port") { TESSERA_ASSIGN_OR_RETURN(o.coordinator_port, int_value(name, value, 0, 65535)); }
    else if (name == "max_restarts") { TESSERA_ASSIGN_OR_RETURN(o.max_restarts, int_value(name, value, 0, 1000)); }
    else if (name == "program") o.program = value;
    else if (name == "mpirun") o.mpirun = value;
    else if (name == "subcommand") { o.subcommand = value; subcommand_given = true; }
  }
  // Another program gets no tessera subcommand unless one is asked for; without one, its
  // own arguments (after "--": a script and its flags) come first, so `--program python3
  // --sync=ssp:2 -- train.py` runs `python3 train.py --sync=ssp:2`.
  if (!o.program.empty() && !subcommand_given) o.subcommand.clear();
  if (!o.program.empty() && o.subcommand.empty()) {
    after.insert(after.end(), o.job_args.begin(), o.job_args.end());
    o.job_args = std::move(after);
  } else {
    o.job_args.insert(o.job_args.end(), after.begin(), after.end());
  }
  // A coordinator elsewhere cannot work here: the launcher serves rank 0's port on
  // loopback, and every process it starts is on this host.
  for (size_t i = 0; i < o.job_args.size(); ++i) {
    const std::string& a = o.job_args[i];
    std::string host;
    if (a.rfind("--coordinator_host=", 0) == 0) host = a.substr(19);
    else if (a == "--coordinator_host" && i + 1 < o.job_args.size()) host = o.job_args[i + 1];
    else continue;
    if (!host.empty() && !IsLoopbackHost(host)) {
      return Status::InvalidArgument(
          "--coordinator_host=" + host + ": tessera launch starts every process of the job on this host and serves "
          "the coordinator on 127.0.0.1; across hosts, start `tessera train` on every host with mpirun or srun, which "
          "find rank 0 themselves (docs/operations.md, \"Across hosts\")");
    }
  }
  return o;
}

const char* LaunchHelpText() {
  return
      "usage: tessera launch --servers S --workers W [launcher flags] [--] [job flags]\n"
      "  --servers S            parameter servers, at least 1 (default 1)\n"
      "  --workers W            workers (default 1)\n"
      "  --grace_s N            seconds between SIGTERM and SIGKILL when stopping (default 10)\n"
      "  --coordinator_port P   coordinator port on 127.0.0.1 (default: a free one)\n"
      "  --max_restarts N       restart the whole job up to N times after a failure (not after\n"
      "                         exit 0, a configuration error (2), preemption (75) or a signal to\n"
      "                         the launcher); each run resumes from the newest checkpoint (default 0)\n"
      "  --subcommand C         what each process runs (default: train; none with --program)\n"
      "  --program PATH         binary to start instead of this tessera; without --subcommand its\n"
      "                         own arguments (a script and its flags) go after \"--\" and the\n"
      "                         job flags before \"--\" follow them (docs/python.md)\n"
      "  --mpirun PATH          mpirun used for the workers with --sync=allreduce|hybrid (default: mpirun)\n"
      "Every other flag goes to each process of the job.\n";
}

int LaunchMain(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--")) break;
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(LaunchHelpText(), stdout);
      return 0;
    }
  }
  auto o = ParseLaunchArgs(argc, argv);
  if (!o.ok()) {
    std::fprintf(stderr, "tessera launch: %s\n", o.status().message().c_str());
    return 2;
  }
  const std::string timeline = TimelineFromArgs(o->job_args);
  if (!timeline.empty()) RemoveTimelines(timeline);
  const int code = RunLocalJob(*o);
  // --timeline: one trace for the whole job out of the processes' files.
  if (!timeline.empty()) {
    int merged = 0;
    Status st = MergeTimelines(timeline, &merged);
    if (st.ok()) std::fprintf(stderr, "tessera launch: timeline of %d processes in %s\n", merged, timeline.c_str());
    else std::fprintf(stderr, "tessera launch: could not merge the timeline: %s\n", st.ToString().c_str());
  }
  return code;
}

}  // namespace tessera::launch
