#!/usr/bin/env bash
# Open MPI "ssh" for the namespace cluster of cluster.sh: give it to mpirun as
#   --mca plm_rsh_agent tests/multinode/rsh_agent.sh
# mpirun calls it as `AGENT [ssh options] HOST WORD...` to start its orted on HOST. The
# agent drops the options and, like sshd, joins the words with spaces and runs them with
# `sh -c` on HOST (network namespace + UTS namespace named HOST, through the same
# mn_node_exec as `cluster.sh exec`), in $HOME, with a login-like clean environment.
# Works for any command: rsh_agent.sh tn2 'hostname; echo $PATH'.
#
# Full mpirun line (also exported as $TESSERA_MN_MPIRUN_ARGS by cluster.sh's env.sh):
#   OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
#   mpirun --host tn1:2,tn2:1,tn3:2 -np 5 --oversubscribe --bind-to none \
#     --mca plm_rsh_agent tests/multinode/rsh_agent.sh \
#     --mca oob_tcp_if_include 10.77.0.0/24 --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 PROG
#
# Notes / traps:
# - The remote words must go through a shell: Open MPI quotes some of them for the remote
#   shell (e.g. -mca orte_hnp_uri "123.0;tcp://10.77.0.254:41234"), as it would for ssh.
# - Clean environment on purpose, as over ssh: mpirun's own environment does not leak into
#   the remote orted, so a test cannot pass only because a variable was inherited. What
#   the ranks need must be forwarded explicitly: `mpirun -x VAR` (or -x VAR=value) reaches
#   every remote rank. Debian's orted is /usr/bin/orted and its libraries are in the
#   default paths, so no PATH / LD_LIBRARY_PATH forwarding and no --prefix is needed (run
#   as /usr/bin/mpirun, Open MPI itself prefixes the remote command with
#   "PATH=/usr/bin:$PATH; LD_LIBRARY_PATH=/usr/lib:...", as --prefix /usr would; harmless).
#   A program that needs LD_LIBRARY_PATH gets it with `-x LD_LIBRARY_PATH`. Set
#   TESSERA_MN_AGENT_KEEP_ENV=1 to pass mpirun's whole environment instead.
# - mpirun may print "plm:rsh: Warning: setpgid(...) failed in parent with errno=Permission
#   denied(13)" now and then: a benign race in Open MPI (the child already exec'd the
#   agent; the child sets its own process group too).
# - orted runs as root without complaint; only mpirun needs OMPI_ALLOW_RUN_AS_ROOT*.
# - Host names: Open MPI compares the name orted reports (its UTS hostname, tnK) with the
#   --host entry, so both must be the short name; no orte_keep_fqdn_hostnames needed.
# - The bridge address (on mpirun's side) is in the subnet, so oob_tcp_if_include SUBNET
#   covers mpirun too; without it orted would offer 127.0.0.1, and the ranks would try lo.
# - Ranks start in mpirun's cwd when it exists on the node (all nodes share the machine's
#   file system), else in $HOME.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"

# ssh options; those of them that take a value consume the next word too.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: rsh_agent.sh [ssh options] HOST [COMMAND WORDS...]" >&2; exit 255; }
host="$1"
shift
[ $# -ge 1 ] || { echo "rsh_agent.sh: no command for $host (interactive login is not supported)" >&2; exit 255; }
remote="$*"

cd "${HOME:-/}" 2>/dev/null || cd /
if [ "${TESSERA_MN_AGENT_KEEP_ENV:-0}" = 1 ]; then
  mn_node_exec "$host" sh -c "$remote"
else
  mn_node_exec "$host" env -i HOME="${HOME:-/root}" USER="$(id -un)" LOGNAME="$(id -un)" SHELL=/bin/sh LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh -c "$remote"
fi
exit 255   # mn_node_exec only returns on failure (unknown node); 255 = ssh's "could not connect"
