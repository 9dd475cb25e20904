/*
 * cell_probe.c: a tiny static program that tests and benchmarks run INSIDE Cells
 * to try one thing and print what happened, e.g. `cell_probe write /x` prints
 * "write /x: EROFS".  It links only libc (statically), so any root tree with it
 * copied in can run it, and it reports exact errno names, which a shell cannot.
 *
 *   write PATH        create/append PATH             bind PORT / connect PORT [IP]
 *   serve PORT        accept one TCP client on 0.0.0.0:PORT, greet it, exit
 *   mount             mount a tmpfs on /tmp           ptrace PID (attach)
 *   caps              raise CAP_SYS_ADMIN, print sets modload (finit_module/init_module)
 *   userns            unshare(CLONE_NEWUSER)          ps (pids visible in /proc)
 *   hog MIB           touch MIB MiB, then sleep       forkbomb (fork until refused)
 *   ignore-term       ignore SIGTERM, sleep            sleep SEC (SIGTERM ends it, exit 0)
 *   id                print uid gid                   cat PATH
 *   inherited         open fds, ignored and blocked signals
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sched.h>

static const char *ename(int e)
{
    switch (e) {
    case 0:
        return "ok";
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    case EROFS:
        return "EROFS";
    case ENOENT:
        return "ENOENT";
    case EAGAIN:
        return "EAGAIN";
    case ENOSYS:
        return "ENOSYS";
    case ESRCH:
        return "ESRCH";
    case EINVAL:
        return "EINVAL";
    case ENOSPC:
        return "ENOSPC";
    case EADDRINUSE:
        return "EADDRINUSE";
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ENETUNREACH:
        return "ENETUNREACH";
    case EBADF:
        return "EBADF";
    default: {
        static char b[32];
        snprintf(b, sizeof(b), "errno%d", e);
        return b;
    }
    }
}

static int report(const char *what, const char *arg, int rc)
{
    printf("%s %s: %s\n", what, arg ? arg : "", ename(rc < 0 ? errno : 0));
    fflush(stdout);
    return 0;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static int tcp(const char *port, int do_bind, const char *ip)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return report(do_bind ? "bind" : "connect", port, -1);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ip)
        inet_pton(AF_INET, ip, &a.sin_addr);
    int rc = do_bind ? bind(s, (struct sockaddr *)&a, sizeof(a))
                     : connect(s, (struct sockaddr *)&a, sizeof(a));
    report(do_bind ? "bind" : "connect", port, rc);
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cell_probe CMD [ARG]\n");
        return 2;
    }
    const char *cmd = argv[1], *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(cmd, "write") && arg) {
        int fd = open(arg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0 && write(fd, "x\n", 2) != 2)
            fd = -1;
        return report("write", arg, fd);
    }
    if (!strcmp(cmd, "bind") && arg)
        return tcp(arg, 1, NULL);
    if (!strcmp(cmd, "connect") && arg)
        return tcp(arg, 0, argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "serve") && arg) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(arg))};
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0)
            return report("serve", arg, -1);
        report("serve", arg, 0);
        int c = accept(s, NULL, NULL);
        if (c >= 0 && write(c, "hello from the cell\n", 20) != 20)
            return report("serve-write", arg, -1);
        return 0;
    }
    if (!strcmp(cmd, "mount"))
        return report("mount", "/tmp", mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(cmd, "ptrace") && arg)
        return report("ptrace", arg, (int)ptrace(PTRACE_ATTACH, atoi(arg), NULL, NULL));
    if (!strcmp(cmd, "caps")) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {0};
        d[0].effective = d[0].permitted = 1u << CAP_SYS_ADMIN;
        report("capset", "sys_admin", (int)syscall(SYS_capset, &h, d));
        report("ambient", "sys_admin",
               prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
        report("setuid", "0", setuid(0));
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f))
            if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
                !strncmp(line, "Seccomp:", 8))
                fputs(line, stdout);
        if (f)
            fclose(f);
        return 0;
    }
    if (!strcmp(cmd, "modload")) {
        report("init_module", "", (int)syscall(SYS_init_module, "", 0, ""));
        int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        return report("finit_module", "", (int)syscall(SYS_finit_module, fd, "", 0));
    }
    if (!strcmp(cmd, "userns"))
        return report("unshare", "user", unshare(CLONE_NEWUSER));
    if (!strcmp(cmd, "ps")) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;
        printf("pids:");
        while (d && (de = readdir(d)))
            if (de->d_name[0] >= '0' && de->d_name[0] <= '9') {
                printf(" %s", de->d_name);
                n++;
            }
        printf("\ncount %d\n", n);
        return 0;
    }
    if (!strcmp(cmd, "hog") && arg) {
        size_t mib = (size_t)atol(arg);
        for (size_t i = 0; i < mib; i++) {
            char *p =
                mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return report("hog", arg, -1);
            memset(p, 0x5a, 1 << 20);
        }
        printf("hog %s: survived\n", arg);
        fflush(stdout);
        return 0;
    }
    if (!strcmp(cmd, "forkbomb")) {
        int n = 0;
        for (;;) {
            pid_t p = fork();
            if (p == 0) {
                pause();
                _exit(0);
            }
            if (p < 0)
                break;
            if (++n >= 100000)
                break;
        }
        printf("forks %d: %s\n", n, ename(errno));
        fflush(stdout);
        return 0;
    }
    if (!strcmp(cmd, "ignore-term")) {
        signal(SIGTERM, SIG_IGN);
        printf("ignoring\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (!strcmp(cmd, "sleep")) {
        signal(SIGTERM, on_term);
        printf("sleeping\n");
        fflush(stdout);
        sleep(arg ? (unsigned)atoi(arg) : 3600);
        return 0;
    }
    if (!strcmp(cmd, "inherited")) { /* open fds and signal state from the parent */
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        printf("fds:");
        while (d && (de = readdir(d)))
            if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
                printf(" %s", de->d_name);
        printf("\n");
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f))
            if (!strncmp(line, "SigIgn", 6) || !strncmp(line, "SigBlk", 6))
                fputs(line, stdout);
        return 0;
    }
    if (!strcmp(cmd, "id")) {
        printf("uid %d gid %d\n", (int)getuid(), (int)getgid());
        return 0;
    }
    if (!strcmp(cmd, "cat") && arg) {
        int fd = open(arg, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return report("cat", arg, -1);
        char b[4096];
        ssize_t n;
        while ((n = read(fd, b, sizeof(b))) > 0)
            fwrite(b, 1, (size_t)n, stdout);
        return 0;
    }
    fprintf(stderr, "cell_probe: unknown command %s\n", cmd);
    return 2;
}
