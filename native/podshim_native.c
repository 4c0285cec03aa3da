/*
 * podshim native helper: the two hot syscall loops of the cgroup writer, and the FNV-1a hash
 * of the checkpoint checksums.
 *
 * Compiled by cffi (API mode, out-of-line) into shim._native; see build_native.py.
 * shim/cgroups/native.py holds a pure-Python fallback that must behave identically:
 * same return values, same errno per item.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A thread list is re-read until a pass finds no new thread, at most this many times:
 * threads cloned while we iterate inherit the creator's (possibly old) mask. */
#define PODSHIM_MAX_PASSES 8

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Append every numeric entry of /proc/<pid>/task to *tids (grown with realloc). */
static int list_tids(int pid, int **tids, size_t *n, size_t *cap)
{
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/%d/task", pid);
    DIR *dir = opendir(dir_path);
    if (dir == NULL)
        return errno;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        long tid = strtol(entry->d_name, &end, 10);
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || *end != '\0')
            continue;
        if (*n == *cap) {
            size_t new_cap = *cap ? *cap * 2 : 64;
            int *grown = realloc(*tids, new_cap * sizeof(int));
            if (grown == NULL) {
                closedir(dir);
                return ENOMEM;
            }
            *tids = grown;
            *cap = new_cap;
        }
        (*tids)[(*n)++] = (int)tid;
    }
    closedir(dir);
    return 0;
}

int podshim_set_process_affinity(int pid, const int *cpus, size_t ncpus, int *first_errno)
{
    *first_errno = 0;
    int max_cpu = 0;
    for (size_t i = 0; i < ncpus; i++) {
        if (cpus[i] < 0) {
            *first_errno = EINVAL;
            return 0;
        }
        if (cpus[i] > max_cpu)
            max_cpu = cpus[i];
    }
    cpu_set_t *mask = CPU_ALLOC((size_t)max_cpu + 1);
    if (mask == NULL) {
        *first_errno = ENOMEM;
        return 0;
    }
    size_t mask_size = CPU_ALLOC_SIZE((size_t)max_cpu + 1);
    CPU_ZERO_S(mask_size, mask);
    for (size_t i = 0; i < ncpus; i++)
        CPU_SET_S((size_t)cpus[i], mask_size, mask);

    int *seen = NULL, *pass = NULL;
    size_t n_seen = 0, cap_seen = 0, n_pass = 0, cap_pass = 0;
    int count = 0;
    for (int round = 0; round < PODSHIM_MAX_PASSES; round++) {
        n_pass = 0;
        int err = list_tids(pid, &pass, &n_pass, &cap_pass);
        if (err != 0) {
            /* The first listing failing means the process is not there (ENOENT) or not ours. */
            if (round == 0)
                *first_errno = err;
            break;
        }
        int fresh = 0;
        for (size_t i = 0; i < n_pass; i++) {
            int tid = pass[i];
            if (n_seen && bsearch(&tid, seen, n_seen, sizeof(int), cmp_int) != NULL)
                continue;
            if (n_seen + (size_t)fresh == cap_seen) {
                size_t new_cap = cap_seen ? cap_seen * 2 : 64;
                int *grown = realloc(seen, new_cap * sizeof(int));
                if (grown == NULL) {
                    if (*first_errno == 0)
                        *first_errno = ENOMEM;
                    goto done;
                }
                seen = grown;
                cap_seen = new_cap;
            }
            /* New tids go after the sorted prefix; the prefix is re-sorted below. */
            seen[n_seen + (size_t)fresh] = tid;
            fresh++;
            if (sched_setaffinity(tid, mask_size, mask) == 0) {
                count++;
            } else if (errno != ESRCH && *first_errno == 0) {
                /* ESRCH: the thread exited between listing and setting; not an error. */
                *first_errno = errno;
            }
        }
        n_seen += (size_t)fresh;
        qsort(seen, n_seen, sizeof(int), cmp_int);
        if (fresh == 0)
            break;
    }
done:
    /* Nothing set and nothing failed: every thread exited, i.e. the process is gone. */
    if (count == 0 && *first_errno == 0)
        *first_errno = ESRCH;
    free(seen);
    free(pass);
    CPU_FREE(mask);
    return count;
}

static int write_one(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno;
    size_t len = strlen(value), done = 0;
    int err = 0;
    /* cgroupfs consumes a whole write at once; the loop only matters for regular files. */
    while (done < len) {
        ssize_t n = write(fd, value + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        done += (size_t)n;
    }
    if (close(fd) != 0 && err == 0)
        err = errno;
    return err;
}

int podshim_write_files(const char **paths, const char **values, size_t n, int stop_on_error, int *errnos)
{
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        if (failures && stop_on_error) {
            errnos[i] = ECANCELED;
            continue;
        }
        errnos[i] = write_one(paths[i], values[i]);
        if (errnos[i] != 0)
            failures++;
    }
    return failures;
}

/* FNV-1a 32 (Go's hash/fnv.New32a) over n bytes, continuing from `hash` (start with the
 * offset basis 2166136261): the kubelet's checkpoint checksums hash whole state dumps, tens of
 * kilobytes that a Python byte loop takes milliseconds over. */
uint32_t podshim_fnv1a_32(const char *data, size_t n, uint32_t hash)
{
    const unsigned char *bytes = (const unsigned char *)data;
    for (size_t i = 0; i < n; i++) {
        hash ^= bytes[i];
        hash *= 16777619u;
    }
    return hash;
}
