package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// franz-go: kgo for producing, consuming and groups, kadm for admin.
type franz struct {
	seeds []string
	cl    *kgo.Client
	adm   *kadm.Client
}

func franzLogger(name string) kgo.Opt {
	return kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, func() string {
		return time.Now().Format("15:04:05.000 ") + "franz-go " + name + ":"
	}))
}

func newFranz(bootstrap string) (Client, error) {
	f := &franz{seeds: splitBootstrap(bootstrap)}
	cl, err := kgo.NewClient(f.opts("admin")...)
	if err != nil {
		return nil, err
	}
	f.cl = cl
	f.adm = kadm.NewClient(cl)
	return f, nil
}

func (f *franz) opts(name string, extra ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(f.seeds...),
		kgo.ClientID("compat-franz-go"),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(20 * time.Second),
		franzLogger(name),
	}, extra...)
}

func (f *franz) Name() string      { return "franz-go" }
func (f *franz) Codecs() []string  { return allCodecs }
func (f *franz) NullIsEmpty() bool { return false }
func (f *franz) Close()            { f.cl.Close() }

func franzErr(err error, msg string) error {
	if err == nil {
		return nil
	}
	if msg != "" {
		return fmt.Errorf("%w (%s)", err, msg)
	}
	return err
}

func (f *franz) CreateTopic(ctx context.Context, topic string, n int32, configs map[string]string) error {
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = kadm.StringPtr(v)
	}
	resp, err := f.adm.CreateTopic(ctx, n, replicationFactor, cfg, topic)
	if err != nil {
		return err
	}
	return franzErr(resp.Err, resp.ErrMessage)
}

func (f *franz) DeleteTopics(ctx context.Context, topics []string) error {
	resps, err := f.adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return err
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("%s: %w", r.Topic, franzErr(r.Err, r.ErrMessage))
		}
	}
	return nil
}

func (f *franz) Metadata(ctx context.Context, topics []string) (*Meta, error) {
	md, err := f.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := &Meta{Brokers: map[int32]string{}, Controller: md.Controller, Topics: map[string]TopicMeta{}}
	for _, b := range md.Brokers {
		out.Brokers[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	for name, td := range md.Topics {
		if errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue // asked for by name, but not there
		}
		tm := TopicMeta{Partitions: map[int32]PartitionMeta{}}
		if td.Err != nil {
			tm.Err = td.Err.Error()
		}
		for p, pd := range td.Partitions {
			pm := PartitionMeta{Leader: pd.Leader, Replicas: pd.Replicas, ISR: pd.ISR}
			if pd.Err != nil {
				pm.Err = pd.Err.Error()
			}
			tm.Partitions[p] = pm
		}
		out.Topics[name] = tm
	}
	return out, nil
}

func (f *franz) CreatePartitions(ctx context.Context, topic string, total int32) error {
	resps, err := f.adm.UpdatePartitions(ctx, int(total), topic)
	if err != nil {
		return err
	}
	r, err := resps.On(topic, nil)
	if err != nil {
		return err
	}
	return franzErr(r.Err, r.ErrMessage)
}

func (f *franz) alter(ctx context.Context, topic string, set map[string]string, legacy bool) error {
	var cfgs []kadm.AlterConfig
	for k, v := range set {
		cfgs = append(cfgs, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
	}
	var resps kadm.AlterConfigsResponses
	var err error
	if legacy {
		resps, err = f.adm.AlterTopicConfigsState(ctx, cfgs, topic)
	} else {
		resps, err = f.adm.AlterTopicConfigs(ctx, cfgs, topic)
	}
	if err != nil {
		return err
	}
	for _, r := range resps {
		if r.Err != nil {
			return franzErr(r.Err, r.ErrMessage)
		}
	}
	return nil
}

func (f *franz) AlterConfigs(ctx context.Context, topic string, set map[string]string) error {
	return f.alter(ctx, topic, set, false)
}

func (f *franz) AlterConfigsLegacy(ctx context.Context, topic string, all map[string]string) error {
	return f.alter(ctx, topic, all, true)
}

func (f *franz) DescribeConfigs(ctx context.Context, topic string) (map[string]ConfigValue, error) {
	rcs, err := f.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, err
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return nil, err
	}
	if rc.Err != nil {
		return nil, franzErr(rc.Err, rc.ErrMessage)
	}
	out := map[string]ConfigValue{}
	for _, c := range rc.Configs {
		out[c.Key] = ConfigValue{Value: c.MaybeValue(), Source: c.Source.String(),
			IsDefault: c.Source == kmsg.ConfigSourceDefaultConfig}
	}
	return out, nil
}

var franzCodecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

func (f *franz) Produce(ctx context.Context, topic string, recs []Rec, o ProduceOpts) ([]Ack, error) {
	extra := []kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(franzCodecs[o.Codec]),
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
			hash := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
			return func(r *kgo.Record, n int) int {
				if r.Partition >= 0 {
					return int(r.Partition)
				}
				return hash.Partition(r, n)
			}
		})),
		// no RecordDeliveryTimeout: franz-go measures it from each record's Timestamp,
		// so records with explicit old timestamps would expire at once; the context
		// bounds the call instead
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if !o.Idempotent {
		// idempotence is franz-go's default; the codec checks should not depend on
		// InitProducerId, which idempotent_producer checks on its own
		extra = append(extra, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1))
	}
	if o.MaxBatchBytes > 0 {
		extra = append(extra, kgo.ProducerBatchMaxBytes(int32(o.MaxBatchBytes)))
	}
	if o.Linger {
		extra = append(extra, kgo.ProducerLinger(20*time.Millisecond))
	}
	cl, err := kgo.NewClient(f.opts("producer", extra...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	acks := make([]Ack, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		kr := &kgo.Record{Key: r.Key, Value: r.Value, Partition: r.Partition}
		if r.Partition < 0 {
			kr.Partition = -1
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if r.Timestamp != 0 {
			kr.Timestamp = time.UnixMilli(r.Timestamp)
		}
		wg.Add(1)
		i := i
		cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				acks[i] = Ack{Partition: kr.Partition, Offset: -1, Err: err}
				return
			}
			acks[i] = Ack{Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp.UnixMilli()}
		})
	}
	wg.Wait()
	return acks, nil
}

func (f *franz) Watermarks(ctx context.Context, topic string, n int32) (map[int32][2]int64, error) {
	starts, err := f.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := f.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32][2]int64{}
	for p := int32(0); p < n; p++ {
		s, ok1 := starts.Lookup(topic, p)
		e, ok2 := ends.Lookup(topic, p)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("partition %d missing from ListOffsets", p)
		}
		if s.Err != nil {
			return nil, fmt.Errorf("partition %d start: %w", p, s.Err)
		}
		if e.Err != nil {
			return nil, fmt.Errorf("partition %d end: %w", p, e.Err)
		}
		out[p] = [2]int64{s.Offset, e.Offset}
	}
	return out, nil
}

func franzConsumed(r *kgo.Record) Consumed {
	c := Consumed{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Timestamp: r.Timestamp.UnixMilli(), ProducerID: r.ProducerID}
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, Header{Key: h.Key, Value: h.Value})
	}
	return c
}

func (f *franz) ConsumeAll(ctx context.Context, topic string, ends map[int32]int64) ([]Consumed, []string) {
	parts := map[int32]kgo.Offset{}
	for p := range ends {
		parts[p] = kgo.NewOffset().At(0)
	}
	cl, err := kgo.NewClient(f.opts("consumer",
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return nil, []string{err.Error()}
	}
	defer cl.Close()
	var out []Consumed
	var errs []string
	next := map[int32]int64{}
	done := func() bool {
		for p, e := range ends {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	for !done() && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Sprintf("partition %d: %v", p, err))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, franzConsumed(r))
			next[r.Partition] = r.Offset + 1
		})
		if len(errs) > 20 {
			break
		}
	}
	if !done() {
		errs = append(errs, fmt.Sprintf("stopped before the end offsets %v, reached %v: %v", ends, next, ctx.Err()))
	}
	return out, errs
}

func (f *franz) OffsetsForTimes(ctx context.Context, topic string, ts map[int32]int64) (map[int32]int64, map[int32]error, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p, t := range ts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = t
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	shards := f.cl.RequestSharded(ctx, req)
	offs := map[int32]int64{}
	perr := map[int32]error{}
	for _, sh := range shards {
		if sh.Err != nil {
			return nil, nil, sh.Err
		}
		resp := sh.Resp.(*kmsg.ListOffsetsResponse)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					perr[p.Partition] = err
				} else {
					offs[p.Partition] = p.Offset
				}
			}
		}
	}
	return offs, perr, nil
}

// ------------------------------------------------------------------------------- groups

type franzMember struct {
	cl         *kgo.Client
	mu         sync.Mutex
	assigned   map[int32]bool
	consumed   int
	lastErr    string
	commitErrs []string
	cancel     context.CancelFunc
	done       chan struct{}
}

func (m *franzMember) CommitErrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.commitErrs...)
}

func (m *franzMember) Assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.assigned) == 0 {
		return nil
	}
	out := make([]int32, 0, len(m.assigned))
	for p := range m.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *franzMember) Consumed() int { m.mu.Lock(); defer m.mu.Unlock(); return m.consumed }
func (m *franzMember) Err() string   { m.mu.Lock(); defer m.mu.Unlock(); return m.lastErr }

func (m *franzMember) Leave(ctx context.Context) error {
	if m.cl == nil {
		return nil
	}
	m.cancel()
	<-m.done
	err := m.cl.LeaveGroupContext(ctx)
	m.cl.Close()
	m.cl = nil
	return err
}

func (f *franz) groupOpts(group, topic, name string, m *franzMember, revokeCommit int64, extra ...kgo.Opt) []kgo.Opt {
	upd := func(ps map[string][]int32, add bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[topic] {
			if add {
				m.assigned[p] = true
			} else {
				delete(m.assigned, p)
			}
		}
	}
	return f.opts(name, append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.SessionTimeout(10 * time.Second),
		kgo.RebalanceTimeout(15 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { upd(ps, true) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
			upd(ps, false)
			if revokeCommit <= 0 || len(ps[topic]) == 0 {
				return
			}
			offs := map[string]map[int32]kgo.EpochOffset{topic: {}}
			for _, p := range ps[topic] {
				offs[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: revokeCommit}
			}
			cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				m.mu.Lock()
				defer m.mu.Unlock()
				if err != nil {
					m.commitErrs = append(m.commitErrs, fmt.Sprintf("%s: commit of %v on revoke: %v", name, ps[topic], err))
					return
				}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
							m.commitErrs = append(m.commitErrs, fmt.Sprintf("%s: commit of partition %d on revoke: %v", name, p.Partition, e))
						}
					}
				}
			})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { upd(ps, false) }),
	}, extra...)...)
}

// startMember runs a member that polls in the background; onRecord (optional) sees every
// record under the member's lock.
func (f *franz) startMember(group, topic, name string, revokeCommit int64, onRecord func(*kgo.Record)) (*franzMember, error) {
	m := &franzMember{assigned: map[int32]bool{}, done: make(chan struct{})}
	cl, err := kgo.NewClient(f.groupOpts(group, topic, name, m, revokeCommit)...)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			m.mu.Lock()
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
					m.lastErr = fmt.Sprintf("partition %d: %v", p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				m.consumed++
				if onRecord != nil {
					onRecord(r)
				}
			})
			m.mu.Unlock()
		}
	}()
	return m, nil
}

func (f *franz) JoinGroup(ctx context.Context, group, topic, name string, revokeCommit int64) (GroupMember, error) {
	return f.startMember(group, topic, name, revokeCommit, nil)
}

func (f *franz) ConsumeAndCommit(ctx context.Context, group, topic string, n int32, upTo int64) error {
	atCommit := map[int32]*kgo.Record{}
	m, err := f.startMember(group, topic, "committer", 0, func(r *kgo.Record) {
		if r.Offset == upTo-1 {
			atCommit[r.Partition] = r
		}
	})
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = m.Leave(c)
	}()
	for {
		m.mu.Lock()
		ready := len(atCommit) == int(n)
		var recs []*kgo.Record
		for _, r := range atCommit {
			recs = append(recs, r)
		}
		lastErr := m.lastErr
		m.mu.Unlock()
		if ready {
			// commits offset+1 of each record, within the member's generation
			return m.cl.CommitRecords(ctx, recs...)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read offset %d on %d of %d partitions before %v (assigned %v)%s",
				upTo-1, len(recs), n, ctx.Err(), m.Assigned(), errSuffix(lastErr))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return "; last client error: " + e
}

func (f *franz) CommittedOffsets(ctx context.Context, group, topic string, n int32) (map[int32]int64, error) {
	resps, err := f.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p := int32(0); p < n; p++ {
		r, ok := resps.Lookup(topic, p)
		if !ok {
			continue
		}
		if r.Err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, r.Err)
		}
		out[p] = r.At
	}
	return out, nil
}

func (f *franz) Resume(ctx context.Context, group, topic string, n int32, end int64) (map[int32][]int64, error) {
	read := map[int32][]int64{}
	m, err := f.startMember(group, topic, "resumer", 0, func(r *kgo.Record) {
		read[r.Partition] = append(read[r.Partition], r.Offset)
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = m.Leave(c)
	}()
	for {
		m.mu.Lock()
		doneParts := 0
		for _, offs := range read {
			if len(offs) > 0 && offs[len(offs)-1] >= end-1 {
				doneParts++
			}
		}
		lastErr := m.lastErr
		m.mu.Unlock()
		if doneParts == int(n) {
			break
		}
		if ctx.Err() != nil {
			m.mu.Lock()
			defer m.mu.Unlock()
			return nil, fmt.Errorf("%d of %d partitions read to offset %d before %v (read %v)%s", doneParts, n, end-1, ctx.Err(), read, errSuffix(lastErr))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32][]int64{}
	for p, o := range read {
		out[p] = append([]int64(nil), o...)
	}
	return out, nil
}
