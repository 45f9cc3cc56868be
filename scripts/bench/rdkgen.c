/*
 * rdkgen: a small librdkafka load generator for scripts/bench.sh.
 *
 *   rdkgen produce -b HOST:PORT -t TOPIC -n COUNT [-s SIZE] [-P PRODUCERS] [-r RATE]
 *                  [-a ACKS] [-X key=value]...
 *       COUNT records of SIZE bytes (default 1024, no key, no compression) from PRODUCERS
 *       producer instances (threads, default 1), at most RATE records/s in total (0 = as
 *       fast as possible). Prints one JSON line: records, bytes, errors, seconds (first
 *       produce call to last delivery report), mb_per_s (MiB/s of payload, as Kafka's
 *       tools count), records_per_s, and delivery latency (produce call to delivery
 *       report) p50/p95/p99/p999/max in ms.
 *
 *   rdkgen consume -b HOST:PORT -t TOPIC -n COUNT [-X key=value]...
 *       Assigns every partition of TOPIC at offset 0 (no group) and reads until COUNT
 *       records or the end of every partition. Prints one JSON line: records, bytes,
 *       seconds (assign to last record), mb_per_s, records_per_s.
 *
 *   rdkgen e2e -b HOST:PORT -t TOPIC -r RATE -d SECONDS [-P PRODUCERS] [-s SIZE] [-a ACKS] [-X key=value]...
 *       Fixed-rate end-to-end latency: one consumer assigned to every partition at the end
 *       offset, PRODUCERS producers sending RATE records/s in all for SECONDS, each record stamped with
 *       its send time (same process, monotonic clock). Prints one JSON line: records,
 *       received, achieved rate, delivery latency and end-to-end latency (produce call to
 *       the consumer receiving it) p50/p95/p99/p999/max in ms.
 *
 *   rdkgen create -b HOST:PORT -t TOPIC[:PARTITIONS][,TOPIC[:PARTITIONS]]... [-p PARTITIONS]
 *       CreateTopics (replication factor 1; -p is the default partition count); an
 *       existing topic is not an error. Returns once Metadata shows a leader for every
 *       partition.
 *
 *   rdkgen delete -b HOST:PORT -t TOPIC[,TOPIC]...
 *       DeleteTopics (frees the disk between measured runs).
 *
 *   rdkgen probe -b HOST:PORT -t TOPIC [-T TIMEOUT_S] -- COMMAND [ARGS...]
 *       Startup probe: starts a producer (acks=all, reconnect backoff 2-10 ms), then
 *       forks COMMAND in its own session (setsid) and produces one record until it is
 *       acknowledged. Prints one JSON line: pid (of COMMAND), ms (fork to acknowledgement).
 *       COMMAND keeps running after rdkgen exits.
 *
 * Build: cc -O2 -o rdkgen rdkgen.c -lrdkafka -lpthread   (Debian: librdkafka-dev)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <librdkafka/rdkafka.h>

#define MAX_X 64

static const char *brokers = "127.0.0.1:9092";
static const char *topic = NULL;
static long long count = 0;
static int size = 1024;
static int producers = 1;
static double rate = 0;
static const char *acks = NULL;
static int partitions = 1;
static int timeout_s = 120;
static double duration_s = 0;
static int stamp = 0; /* e2e: each payload carries its send time */
static const char *xconf[MAX_X];
static int nx = 0;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "rdkgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk; (void)fac;
    if (level <= 3) fprintf(stderr, "rdkafka: %s\n", buf);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die("%s", err);
}

static rd_kafka_conf_t *base_conf(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    for (int i = 0; i < nx; i++) {
        char *kv = strdup(xconf[i]);
        char *eq = strchr(kv, '=');
        if (!eq) die("-X wants key=value, got %s", xconf[i]);
        *eq = 0;
        set(conf, kv, eq + 1);
        free(kv);
    }
    return conf;
}

/* ------------------------------------------------------------------ produce */

struct pstate {
    int id;
    long long n;          /* records to send */
    long long delivered;
    long long errors;
    uint32_t *lat;        /* delivery latency samples, microseconds */
    long long nlat;
    int64_t first_us, last_us;
    char errstr[256];
};

static char *payload;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    struct pstate *st = opaque;
    int64_t t = now_us();
    if (m->err) {
        if (st->errors++ == 0)
            snprintf(st->errstr, sizeof st->errstr, "%s", rd_kafka_err2str(m->err));
    } else {
        st->delivered++;
        int64_t sent = (int64_t)(intptr_t)m->_private;
        int64_t d = t - sent;
        if (d < 0) d = 0;
        if (d > UINT32_MAX) d = UINT32_MAX;
        st->lat[st->nlat++] = (uint32_t)d;
    }
    st->last_us = t;
}

static void *produce_thread(void *arg) {
    struct pstate *st = arg;
    char err[512];
    rd_kafka_conf_t *conf = base_conf();
    if (acks) set(conf, "acks", acks);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("%s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    double per_thread_rate = rate > 0 ? rate / producers : 0;
    st->first_us = now_us();
    for (long long i = 0; i < st->n; i++) {
        if (per_thread_rate > 0) {
            int64_t due = st->first_us + (int64_t)(i * 1e6 / per_thread_rate);
            int64_t t;
            while ((t = now_us()) < due) {
                int64_t wait_ms = (due - t) / 1000;
                rd_kafka_poll(rk, wait_ms > 0 ? (int)wait_ms : 0);
                if (wait_ms == 0) {
                    struct timespec ts = {0, (due - t) * 1000};
                    nanosleep(&ts, NULL);
                }
            }
        }
        if (duration_s > 0 && (i & 63) == 0 && now_us() - st->first_us > (int64_t)(duration_s * 1e6))
            break;
        for (;;) {
            int64_t ts = now_us();
            int rc;
            if (stamp) {
                /* "RDKGEN01" + send time; the consumer side of e2e reads it back */
                char buf[65536];
                int n = size < (int)sizeof buf ? size : (int)sizeof buf;
                memcpy(buf, payload, n);
                memcpy(buf, "RDKGEN01", 8);
                memcpy(buf + 8, &ts, 8);
                rc = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, buf, n,
                                      NULL, 0, (void *)(intptr_t)ts);
            } else {
                /* payload is static for the life of the process: no copy (msgflags 0) */
                rc = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload, size, NULL, 0,
                                      (void *)(intptr_t)ts);
            }
            if (rc == 0)
                break;
            if (rd_kafka_last_error() == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 1);
                continue;
            }
            die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
        }
        if ((i & 255) == 0) rd_kafka_poll(rk, 0);
    }
    while (rd_kafka_outq_len(rk) > 0) rd_kafka_poll(rk, 50);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, long long n, double p) {
    if (n == 0) return 0;
    long long i = (long long)(p * (double)n);
    if (i >= n) i = n - 1;
    return v[i] / 1000.0;
}

static int do_produce(void) {
    if (!topic || count <= 0) die("%s", "produce needs -t TOPIC -n COUNT");
    payload = malloc(size);
    for (int i = 0; i < size; i++) payload[i] = 'A' + (char)(rand() % 26);
    struct pstate *st = calloc(producers, sizeof *st);
    pthread_t *th = calloc(producers, sizeof *th);
    for (int i = 0; i < producers; i++) {
        st[i].id = i;
        st[i].n = count / producers + (i < count % producers ? 1 : 0);
        st[i].lat = malloc(sizeof(uint32_t) * (st[i].n + 1));
        pthread_create(&th[i], NULL, produce_thread, &st[i]);
    }
    long long delivered = 0, errors = 0, nlat = 0;
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < producers; i++) {
        pthread_join(th[i], NULL);
        delivered += st[i].delivered;
        errors += st[i].errors;
        nlat += st[i].nlat;
        if (st[i].first_us < first) first = st[i].first_us;
        if (st[i].last_us > last) last = st[i].last_us;
    }
    uint32_t *all = malloc(sizeof(uint32_t) * (nlat + 1));
    long long k = 0;
    for (int i = 0; i < producers; i++) {
        memcpy(all + k, st[i].lat, sizeof(uint32_t) * st[i].nlat);
        k += st[i].nlat;
    }
    qsort(all, nlat, sizeof(uint32_t), cmp_u32);
    double secs = (last - first) / 1e6;
    if (secs <= 0) secs = 1e-9;
    double bytes = (double)delivered * size;
    printf("{\"mode\":\"produce\",\"records\":%lld,\"bytes\":%.0f,\"errors\":%lld,"
           "\"seconds\":%.3f,\"mb_per_s\":%.2f,\"records_per_s\":%.1f,"
           "\"lat_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
           "\"producers\":%d,\"librdkafka\":\"%s\"",
           delivered, bytes, errors, secs, bytes / 1048576.0 / secs, delivered / secs,
           pct(all, nlat, .50), pct(all, nlat, .95), pct(all, nlat, .99), pct(all, nlat, .999),
           nlat ? all[nlat - 1] / 1000.0 : 0.0, producers, rd_kafka_version_str());
    for (int i = 0; i < producers; i++)
        if (st[i].errors) { printf(",\"first_error\":\"%s\"", st[i].errstr); break; }
    printf("}\n");
    return errors ? 2 : 0;
}

/* ------------------------------------------------------------------ consume */

static int do_consume(void) {
    if (!topic) die("%s", "consume needs -t TOPIC");
    char err[512];
    rd_kafka_conf_t *conf = base_conf();
    set(conf, "enable.partition.eof", "true");
    set(conf, "enable.auto.commit", "false");
    set(conf, "group.id", "rdkgen-consume");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("%s", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e) die("metadata: %s", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err) die("topic %s not found", topic);
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    int64_t t0 = now_us(), tlast = t0;
    e = rd_kafka_assign(rk, parts);
    if (e) die("assign: %s", rd_kafka_err2str(e));
    long long n = 0, errors = 0;
    double bytes = 0;
    int eofs = 0;
    char *seen_eof = calloc(np + 1, 1);
    int64_t deadline = t0 + (int64_t)timeout_s * 1000000;
    while ((count <= 0 || n < count) && eofs < np && now_us() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < np && !seen_eof[m->partition]) {
                seen_eof[m->partition] = 1;
                eofs++;
            }
        } else if (m->err) {
            if (errors++ == 0) fprintf(stderr, "rdkgen: consume: %s\n", rd_kafka_message_errstr(m));
        } else {
            n++;
            bytes += m->len + m->key_len;
            tlast = now_us();
        }
        rd_kafka_message_destroy(m);
    }
    double secs = (tlast - t0) / 1e6;
    if (secs <= 0) secs = 1e-9;
    printf("{\"mode\":\"consume\",\"records\":%lld,\"bytes\":%.0f,\"errors\":%lld,\"seconds\":%.3f,"
           "\"mb_per_s\":%.2f,\"records_per_s\":%.1f,\"partitions\":%d,\"librdkafka\":\"%s\"}\n",
           n, bytes, errors, secs, bytes / 1048576.0 / secs, n / secs, np, rd_kafka_version_str());
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return (count > 0 && n < count) ? 2 : 0;
}

/* ------------------------------------------------------------------ e2e */

struct cstate {
    rd_kafka_t *rk;
    volatile int stop;
    uint32_t *lat;
    long long nlat, cap;
    long long errors;
};

static void *e2e_consumer(void *arg) {
    struct cstate *c = arg;
    while (!c->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 20);
        if (!m) continue;
        int64_t t = now_us();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && c->errors++ == 0)
                fprintf(stderr, "rdkgen: e2e consume: %s\n", rd_kafka_message_errstr(m));
        } else if (m->len >= 16 && !memcmp(m->payload, "RDKGEN01", 8)) {
            int64_t ts;
            memcpy(&ts, (char *)m->payload + 8, 8);
            int64_t d = t - ts;
            if (d < 0) d = 0;
            if (d > UINT32_MAX) d = UINT32_MAX;
            if (c->nlat < c->cap) c->lat[c->nlat++] = (uint32_t)d;
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static int do_e2e(void) {
    if (!topic || rate <= 0 || duration_s <= 0) die("%s", "e2e needs -t TOPIC -r RATE -d SECONDS");
    if (size < 16) size = 16;
    char err[512];
    payload = malloc(size);
    for (int i = 0; i < size; i++) payload[i] = 'A' + (char)(rand() % 26);
    stamp = 1;
    /* consumer: every partition at the end offset */
    rd_kafka_conf_t *conf = base_conf();
    set(conf, "enable.auto.commit", "false");
    set(conf, "group.id", "rdkgen-e2e");
    rd_kafka_t *crk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!crk) die("%s", err);
    rd_kafka_poll_set_consumer(crk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(crk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(crk, 0, rkt, &md, 10000);
    if (e) die("metadata: %s", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err) die("topic %s not found", topic);
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[p].id)->offset =
            RD_KAFKA_OFFSET_END;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if ((e = rd_kafka_assign(crk, parts))) die("assign: %s", rd_kafka_err2str(e));
    struct cstate c = {0};
    c.rk = crk;
    c.cap = (long long)(rate * duration_s * 1.2) + 1000;
    c.lat = malloc(sizeof(uint32_t) * c.cap);
    pthread_t cth;
    pthread_create(&cth, NULL, e2e_consumer, &c);
    /* let the consumer resolve its end offsets and start fetching */
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    /* PRODUCERS producer instances (threads), RATE / PRODUCERS records/s each */
    long long per = (long long)(rate / producers * duration_s * 1.2) + 1000; /* bounded by duration_s */
    struct pstate *sts = calloc(producers, sizeof *sts);
    pthread_t *pth = calloc(producers, sizeof *pth);
    for (int i = 0; i < producers; i++) {
        sts[i].id = i;
        sts[i].n = per;
        sts[i].lat = malloc(sizeof(uint32_t) * (per + 1));
        pthread_create(&pth[i], NULL, produce_thread, &sts[i]);
    }
    struct pstate st = {0};
    st.first_us = INT64_MAX;
    for (int i = 0; i < producers; i++) {
        pthread_join(pth[i], NULL);
        st.delivered += sts[i].delivered;
        st.errors += sts[i].errors;
        st.nlat += sts[i].nlat;
        if (sts[i].first_us < st.first_us) st.first_us = sts[i].first_us;
        if (sts[i].last_us > st.last_us) st.last_us = sts[i].last_us;
    }
    st.lat = malloc(sizeof(uint32_t) * (st.nlat + 1));
    for (long long i = 0, k = 0; i < producers; k += sts[i].nlat, i++)
        memcpy(st.lat + k, sts[i].lat, sizeof(uint32_t) * sts[i].nlat);
    /* wait for the consumer to see what was delivered (at most 5 s) */
    int64_t until = now_us() + 5000000;
    while (c.nlat < st.delivered && now_us() < until) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    c.stop = 1;
    pthread_join(cth, NULL);
    qsort(st.lat, st.nlat, sizeof(uint32_t), cmp_u32);
    qsort(c.lat, c.nlat, sizeof(uint32_t), cmp_u32);
    double secs = (st.last_us - st.first_us) / 1e6;
    if (secs <= 0) secs = 1e-9;
    printf("{\"mode\":\"e2e\",\"records\":%lld,\"received\":%lld,\"errors\":%lld,\"seconds\":%.3f,"
           "\"target_rate\":%.1f,\"records_per_s\":%.1f,\"mb_per_s\":%.2f,"
           "\"lat_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
           "\"e2e_ms\":{\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
           "\"partitions\":%d,\"producers\":%d,\"librdkafka\":\"%s\"}\n",
           st.delivered, c.nlat, st.errors + c.errors, secs, rate, st.delivered / secs,
           st.delivered * (double)size / 1048576.0 / secs,
           pct(st.lat, st.nlat, .50), pct(st.lat, st.nlat, .95), pct(st.lat, st.nlat, .99),
           pct(st.lat, st.nlat, .999), st.nlat ? st.lat[st.nlat - 1] / 1000.0 : 0.0,
           pct(c.lat, c.nlat, .50), pct(c.lat, c.nlat, .95), pct(c.lat, c.nlat, .99),
           pct(c.lat, c.nlat, .999), c.nlat ? c.lat[c.nlat - 1] / 1000.0 : 0.0,
           np, producers, rd_kafka_version_str());
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(crk);
    rd_kafka_destroy(crk);
    return (st.errors || c.nlat == 0) ? 2 : 0;
}

/* ------------------------------------------------------------------ create */

static int do_create(void) {
    if (!topic) die("%s", "create needs -t TOPIC[:PARTITIONS][,TOPIC[:PARTITIONS]]...");
    char err[512];
    rd_kafka_conf_t *conf = base_conf();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("%s", err);
    /* parse the list */
    char *list = strdup(topic);
    int cap = 1;
    for (const char *c = topic; *c; c++) cap += *c == ',';
    char **names = calloc(cap, sizeof *names);
    int *nparts = calloc(cap, sizeof *nparts);
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        char *colon = strchr(tok, ':');
        nparts[n] = partitions;
        if (colon) { *colon = 0; nparts[n] = atoi(colon + 1); }
        names[n++] = tok;
    }
    rd_kafka_NewTopic_t **nt = calloc(n, sizeof *nt);
    for (int i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], nparts[i], 1, err, sizeof err);
        if (!nt[i]) die("%s", err);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(opt, 30000, err, sizeof err);
    rd_kafka_CreateTopics(rk, nt, n, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    int rc = 0;
    if (!ev) die("%s", "CreateTopics timed out");
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "rdkgen: CreateTopics: %s\n", rd_kafka_event_error_string(ev));
        rc = 1;
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
            if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "rdkgen: CreateTopics %s: %s\n", rd_kafka_topic_result_name(res[i]),
                        rd_kafka_err2str(te));
                rc = 1;
            }
        }
    }
    rd_kafka_event_destroy(ev);
    /* wait until Metadata shows a leader for every partition of every topic */
    int64_t deadline = now_us() + 30000000;
    while (rc == 0) {
        const struct rd_kafka_metadata *md;
        int ready = 0;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) == 0) {
            for (int i = 0; i < n; i++)
                for (int t = 0; t < md->topic_cnt; t++) {
                    const rd_kafka_metadata_topic_t *mt = &md->topics[t];
                    if (strcmp(mt->topic, names[i]) || mt->err || mt->partition_cnt != nparts[i]) continue;
                    int leaders = 1;
                    for (int p = 0; p < mt->partition_cnt; p++)
                        if (mt->partitions[p].leader < 0 || mt->partitions[p].err) leaders = 0;
                    ready += leaders;
                }
            rd_kafka_metadata_destroy(md);
        }
        if (ready == n) break;
        if (now_us() > deadline) {
            fprintf(stderr, "rdkgen: topics not ready (leaders) after 30 s\n");
            rc = 1;
            break;
        }
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_AdminOptions_destroy(opt);
    for (int i = 0; i < n; i++) rd_kafka_NewTopic_destroy(nt[i]);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

static int do_delete(void) {
    if (!topic) die("%s", "delete needs -t TOPIC[,TOPIC]...");
    char err[512];
    rd_kafka_conf_t *conf = base_conf();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("%s", err);
    char *list = strdup(topic);
    int cap = 1;
    for (const char *c = topic; *c; c++) cap += *c == ',';
    rd_kafka_DeleteTopic_t **dt = calloc(cap, sizeof *dt);
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) dt[n++] = rd_kafka_DeleteTopic_new(tok);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, err, sizeof err);
    rd_kafka_DeleteTopics(rk, dt, n, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    int rc = 0;
    if (!ev) die("%s", "DeleteTopics timed out");
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "rdkgen: DeleteTopics: %s\n", rd_kafka_event_error_string(ev));
        rc = 1;
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_DeleteTopic_destroy_array(dt, n);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ------------------------------------------------------------------ probe */

static volatile int acked = 0;
static int64_t ack_us = 0;
static char probe_err[256];

static void probe_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk; (void)opaque;
    if (m->err) snprintf(probe_err, sizeof probe_err, "%s", rd_kafka_err2str(m->err));
    else { ack_us = now_us(); acked = 1; }
    if (m->err) acked = -1;
}

static int do_probe(char **cmd) {
    if (!topic || !cmd || !cmd[0]) die("%s", "probe needs -t TOPIC -- COMMAND");
    char err[512], tmo[32];
    rd_kafka_conf_t *conf = base_conf();
    set(conf, "acks", "all");
    set(conf, "reconnect.backoff.ms", "2");
    set(conf, "reconnect.backoff.max.ms", "10");
    set(conf, "retry.backoff.ms", "10");
    set(conf, "topic.metadata.refresh.fast.interval.ms", "10");
    set(conf, "socket.connection.setup.timeout.ms", "1000");
    set(conf, "linger.ms", "0");
    /* connect eagerly: with sparse connections a refused bootstrap connection is only
     * retried on the 1 s metadata timer, which would floor every figure at ~1 s */
    set(conf, "enable.sparse.connections", "false");
    snprintf(tmo, sizeof tmo, "%d", timeout_s * 1000);
    set(conf, "message.timeout.ms", tmo);
    rd_kafka_conf_set_dr_msg_cb(conf, probe_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("%s", err);
    int64_t t0 = now_us();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        setsid();
        execvp(cmd[0], cmd);
        fprintf(stderr, "rdkgen: exec %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE("probe", 5),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
        die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
    while (!acked) {
        rd_kafka_poll(rk, 1);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            printf("{\"mode\":\"probe\",\"pid\":%d,\"error\":\"command exited (status %d)\"}\n",
                   (int)pid, status);
            return 1;
        }
    }
    if (acked < 0) {
        printf("{\"mode\":\"probe\",\"pid\":%d,\"error\":\"%s\"}\n", (int)pid, probe_err);
        return 1;
    }
    printf("{\"mode\":\"probe\",\"pid\":%d,\"ms\":%.2f}\n", (int)pid, (ack_us - t0) / 1000.0);
    fflush(stdout);
    rd_kafka_destroy(rk);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("%s", "usage: rdkgen produce|consume|e2e|create|delete|probe [options]");
    const char *mode = argv[1];
    char **cmd = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) { cmd = &argv[i + 1]; break; }
        if (!v) die("missing value for %s", a);
        i++;
        if (!strcmp(a, "-b")) brokers = v;
        else if (!strcmp(a, "-t")) topic = v;
        else if (!strcmp(a, "-n")) count = atoll(v);
        else if (!strcmp(a, "-s")) size = atoi(v);
        else if (!strcmp(a, "-P")) producers = atoi(v);
        else if (!strcmp(a, "-r")) rate = atof(v);
        else if (!strcmp(a, "-a")) acks = v;
        else if (!strcmp(a, "-p")) partitions = atoi(v);
        else if (!strcmp(a, "-T")) timeout_s = atoi(v);
        else if (!strcmp(a, "-d")) duration_s = atof(v);
        else if (!strcmp(a, "-X")) { if (nx < MAX_X) xconf[nx++] = v; }
        else die("unknown option %s", a);
    }
    if (producers < 1) producers = 1;
    if (!strcmp(mode, "produce")) return do_produce();
    if (!strcmp(mode, "consume")) return do_consume();
    if (!strcmp(mode, "e2e")) return do_e2e();
    if (!strcmp(mode, "create")) return do_create();
    if (!strcmp(mode, "delete")) return do_delete();
    if (!strcmp(mode, "version")) { printf("%s\n", rd_kafka_version_str()); return 0; }
    if (!strcmp(mode, "probe")) return do_probe(cmd);
    die("unknown mode %s", mode);
    return 1;
}
