/*
 * cell_init.c: the optional PID 1 of init Cells (spec.init), as a program of
 * its own: `cell-init PROGRAM ARGS...` with the Cell's environment.
 *
 * Why a program: an init that is our code running on in the cloned child never
 * execs, so its Cell could not take the vfork-style start (the supervisor or
 * spawner is suspended until the child execs) and had to clone a copy of the
 * supervisor instead, at about twice the CPU.  It is embedded in the library
 * (cell_init_blob.c, generated), put into a sealed memfd once per host and
 * exec'd with execveat as the last step of the sandbox: seccomp, Landlock, the
 * uid and no_new_privs are already in place, so it runs exactly as the program
 * would, and the stop signals are already blocked.
 *
 * Why without libc: the extra exec is what an init Cell pays, and on our VMs a
 * static glibc program costs 3.5 ms of CPU more than exec'ing the program
 * directly (its start-up faults in dozens of pages), a 9 KiB program without
 * libc 1.2 ms (docs/cell.md).  So this is freestanding x86-64: raw system
 * calls, no allocation, its own PATH search (the same rules as
 * cell_exec_path in cell_exec.h, which the in-process fallback uses), and the
 * loop of cell_init_wait: start the program vfork-style with an empty mask,
 * forward the stop signals, reap, exit with the program's status (128+N for
 * signal N).
 */
#include <asm/unistd.h>
#include <stddef.h>

#define E_NOENT  2
#define E_INTR   4
#define E_NOEXEC 8
#define E_ACCES  13
#define E_NOTDIR 20

#define S_HUP   1
#define S_INT   2
#define S_QUIT  3
#define S_USR1  10
#define S_USR2  12
#define S_TERM  15
#define S_CHLD  17
#define S_WINCH 28

#define WNOHANG_  1
#define PATH_MAX_ 4096

static long sc(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

/* gcc may emit calls to these for struct copies and zeroing */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--)
        *p++ = (unsigned char)c;
    return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

static size_t len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *a, const char *b, const char *c)
{
    const char *parts[] = {"cell init: ", a, b, c, "\n"};
    for (size_t i = 0; i < 5; i++)
        sc(__NR_write, 2, (long)parts[i], (long)len(parts[i]), 0);
}

static const char *err_text(long e)
{
    switch (e) {
    case E_NOENT:
        return ": No such file or directory";
    case E_ACCES:
        return ": Permission denied";
    case E_NOTDIR:
        return ": Not a directory";
    case E_NOEXEC:
        return ": Exec format error";
    default:
        return ": exec failed";
    }
}

/* execve along the PATH of envp (default as in cell_exec.h); returns errno */
static long exec_path(char **argv, char **envp)
{
    const char *file = argv[0];
    for (const char *p = file; *p; p++)
        if (*p == '/')
            return -sc(__NR_execve, (long)file, (long)argv, (long)envp, 0);
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (size_t i = 0; envp[i]; i++) {
        const char *v = envp[i];
        if (v[0] == 'P' && v[1] == 'A' && v[2] == 'T' && v[3] == 'H' && v[4] == '=')
            path = v + 5;
    }
    long r = E_NOENT;
    size_t fl = len(file);
    for (const char *p = path;;) {
        const char *end = p;
        while (*end && *end != ':')
            end++;
        char full[PATH_MAX_];
        size_t dl = (size_t)(end - p);
        if (dl + 1 + fl + 1 <= sizeof(full)) {
            memcpy(full, p, dl);
            full[dl] = '/';
            memcpy(full + dl + 1, file, fl + 1);
            long e = -sc(__NR_execve, (long)full, (long)argv, (long)envp, 0);
            if (e == E_ACCES)
                r = E_ACCES; /* remembered, like execvp */
            else if (e != E_NOENT && e != E_NOTDIR)
                return e;
        }
        if (!*end)
            return r;
        p = end + 1;
    }
}

/* The program's side of the vfork-style spawn (below): empty mask, exec. */
struct spawn_arg {
    char **argv, **envp;
};

void spawn_child(struct spawn_arg *a) __attribute__((used, noinline, noreturn));
void spawn_child(struct spawn_arg *a)
{
    unsigned long none = 0;
    sc(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, (long)&none, 0, 8);
    long e = exec_path(a->argv, a->envp);
    say("exec ", a->argv[0], err_text(e));
    sc(__NR_exit_group, 127, 0, 0, 0);
    __builtin_unreachable();
}

/* clone(CLONE_VM|CLONE_VFORK|SIGCHLD) with the child on its own stack
 * running spawn_child(arg): like posix_spawn, no copy of us (a fork, even of
 * this small a program, costs about 2 ms of CPU on our VMs in page faults).
 * Returns the pid once the child exec'd or exited, or -errno. */
long vfork_spawn(struct spawn_arg *arg, char *stack_top);
__asm__(".text\n.global vfork_spawn\nvfork_spawn:\n"
        "  sub $16, %rsi\n"
        "  mov %rdi, (%rsi)\n"  /* the argument, popped by the child */
        "  mov $0x4111, %edi\n" /* CLONE_VM | CLONE_VFORK | SIGCHLD */
        "  xor %edx, %edx\n"
        "  xor %r10d, %r10d\n"
        "  xor %r8d, %r8d\n"
        "  mov $56, %eax\n" /* __NR_clone */
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jnz 1f\n"
        "  pop %rdi\n"
        "  and $-16, %rsp\n"
        "  call spawn_child\n"
        "  hlt\n"
        "1: ret\n");

static char child_stack[64 << 10] __attribute__((aligned(16)));

struct ksiginfo {
    int signo, errno_, code, pad[29];
};

void init_main(long *sp) __attribute__((used, noinline, noreturn));
void init_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) {
        say("usage: cell-init PROGRAM [ARGS...]", "", "");
        sc(__NR_exit_group, 127, 0, 0, 0);
    }
    unsigned long set = 0;
    static const int fwd[] = {S_TERM, S_INT, S_HUP, S_QUIT, S_USR1, S_USR2, S_WINCH, S_CHLD};
    for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
        set |= 1UL << (fwd[i] - 1);
    sc(__NR_rt_sigprocmask, 0 /* SIG_BLOCK */, (long)&set, 0, 8); /* the sandbox did already */
    struct spawn_arg sa = {argv + 1, envp};
    long child = vfork_spawn(&sa, child_stack + sizeof(child_stack));
    if (child < 0) {
        say("clone failed", "", "");
        sc(__NR_exit_group, 127, 0, 0, 0);
    }
    for (;;) {
        struct ksiginfo si;
        long sig = sc(__NR_rt_sigtimedwait, (long)&set, (long)&si, 0, 8);
        if (sig == -E_INTR)
            continue;
        if (sig < 0) {
            say("sigtimedwait failed", "", "");
            sc(__NR_exit_group, 126, 0, 0, 0);
        }
        if (sig != S_CHLD) {
            sc(__NR_kill, child, sig, 0, 0);
            continue;
        }
        int st;
        long pid;
        while ((pid = sc(__NR_wait4, -1, (long)&st, WNOHANG_, 0)) > 0)
            if (pid == child) {
                int code = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f);
                sc(__NR_exit_group, code, 0, 0, 0);
            }
    }
}

/* The kernel's entry: argc, argv, envp on the stack; align it and go. */
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call init_main\n  hlt\n");
