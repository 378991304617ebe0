/* Prometheus text exposition: histograms, and the helpers that write
 * counters and gauges in the format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
#ifndef SP_METRICS_METRICS_H
#define SP_METRICS_METRICS_H

#include <stdint.h>

struct evbuffer;

#define SP_HISTOGRAM_BUCKETS 14

/* Seconds, from 100 us to 10 s. */
struct sp_histogram {
    uint64_t counts[SP_HISTOGRAM_BUCKETS]; /* not cumulative; rendering sums them */
    uint64_t count;
    double sum;
};

void sp_histogram_observe(struct sp_histogram *h, double seconds);
/* sum += h (workers' histograms summed for the exposition). */
void sp_histogram_add(struct sp_histogram *sum, const struct sp_histogram *h);

/* "# HELP name help\n# TYPE name type\n" */
void sp_metric_head(struct evbuffer *out, const char *name, const char *type, const char *help);
/* name{labels} value (labels may be NULL or "" for none) */
void sp_metric_value(struct evbuffer *out, const char *name, const char *labels, double value);
/* A family of one unlabelled value: its head and the value. */
void sp_metric_one(struct evbuffer *out, const char *name, const char *type, const char *help,
                   double value);
/* A whole histogram family with its head. */
void sp_metric_histogram(struct evbuffer *out, const char *name, const char *help,
                         const struct sp_histogram *h);

/* This process: open file descriptors and resident memory in bytes (-1 if unknown). */
long sp_process_open_fds(void);
long sp_process_rss_bytes(void);

#endif
