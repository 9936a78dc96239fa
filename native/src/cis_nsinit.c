/* cis-nsinit: the first program inside a CIS `namespaces` sandbox (Linux only).
 *
 * The native twin of cheng_build/cis/sandbox/nsinit.py (same arguments, same steps, same exit
 * codes); the engine prefers this one because a Python start-up costs tens of milliseconds per
 * task and this costs about one. Run by `unshare -U -r -m -p -f --mount-proc [-n]` as
 *
 *     cis-nsinit [--lo] [--cover DIR]... -- PROGRAM ARGS...
 *
 * it (1) sets IFF_UP on `lo` (a new network namespace starts with its loopback down), (2) mounts
 * an empty read-only tmpfs over each DIR (root-owned files such as the pids cgroup's
 * cgroup.procs are writable to uid 0 of the user namespace when the engine runs as root), then
 * (3) drops every capability for good (SECBIT_NOROOT locked, bounding set emptied,
 * no_new_privs) so the task cannot unmount the covers, and (4) execs PROGRAM.
 * Exit 125: a sandbox step failed (the task must not run half-sandboxed); 127: exec failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define EXIT_EXEC 127
#define MAX_COVERS 16
/* SECBIT_NOROOT | _LOCKED | SECBIT_NO_SETUID_FIXUP | _LOCKED | SECBIT_KEEP_CAPS_LOCKED */
#define SECUREBITS (0x01 | 0x02 | 0x04 | 0x08 | 0x20)
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static int fail(const char *step, const char *what) {
    fprintf(stderr, "cis sandbox (namespaces): %s%s: %s\n", step, what, strerror(errno));
    return EXIT_SETUP;
}

static int loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("bringing up lo", "");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? 0 : fail("bringing up lo", "");
}

static int cover(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 0; /* nothing there to protect */
    if (mount("cis-cover", dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0555") != 0)
        return fail("covering ", dir);
    return 0;
}

static int drop_capabilities(void) {
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0) != 0) return fail("locking securebits", "");
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) break; /* EINVAL: past the last one */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("setting no_new_privs", "");
    return 0;
}

int main(int argc, char **argv) {
    int lo = 0, ncovers = 0, i = 1;
    const char *covers[MAX_COVERS];
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--lo") == 0) {
            lo = 1;
        } else if (strcmp(argv[i], "--cover") == 0 && i + 1 < argc && ncovers < MAX_COVERS) {
            covers[ncovers++] = argv[++i];
        } else {
            fprintf(stderr, "cis sandbox (namespaces): unknown argument '%s'\n", argv[i]);
            return EXIT_SETUP;
        }
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "cis sandbox (namespaces): no task argv after --\n");
        return EXIT_SETUP;
    }
    int rc;
    if (lo && (rc = loopback_up()) != 0) return rc;
    for (int c = 0; c < ncovers; c++)
        if ((rc = cover(covers[c])) != 0) return rc;
    if ((rc = drop_capabilities()) != 0) return rc;
    execv(argv[i + 1], &argv[i + 1]);
    fprintf(stderr, "cis sandbox (namespaces): cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return EXIT_EXEC;
}
