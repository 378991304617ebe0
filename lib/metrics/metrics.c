#include "metrics/metrics.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <unistd.h>

static const double bounds[SP_HISTOGRAM_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10,
};

void sp_histogram_observe(struct sp_histogram *h, double seconds)
{
    h->count++;
    h->sum += seconds;
    for (int i = 0; i < SP_HISTOGRAM_BUCKETS; i++) {
        if (seconds <= bounds[i]) {
            h->counts[i]++;
            return;
        }
    }
}

void sp_metric_head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void sp_metric_value(struct evbuffer *out, const char *name, const char *labels, double value)
{
    if (labels && labels[0])
        evbuffer_add_printf(out, "%s{%s} %.17g\n", name, labels, value);
    else
        evbuffer_add_printf(out, "%s %.17g\n", name, value);
}

void sp_metric_one(struct evbuffer *out, const char *name, const char *type, const char *help,
                   double value)
{
    sp_metric_head(out, name, type, help);
    sp_metric_value(out, name, NULL, value);
}

void sp_metric_histogram(struct evbuffer *out, const char *name, const char *help,
                         const struct sp_histogram *h)
{
    uint64_t cumulative = 0;

    sp_metric_head(out, name, "histogram", help);
    for (int i = 0; i < SP_HISTOGRAM_BUCKETS; i++) {
        cumulative += h->counts[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                            (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name,
                        (unsigned long long)h->count, name, h->sum, name,
                        (unsigned long long)h->count);
}

long sp_process_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;

    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", "..", and the directory's own descriptor */
}

long sp_process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1, rss = -1;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

void sp_histogram_add(struct sp_histogram *sum, const struct sp_histogram *h)
{
    for (int i = 0; i < SP_HISTOGRAM_BUCKETS; i++)
        sum->counts[i] += h->counts[i];
    sum->count += h->count;
    sum->sum += h->sum;
}
