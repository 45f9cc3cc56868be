package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// segmentio/kafka-go: Writer, Reader (partition and group), ConsumerGroup, Client.
type kafkaGo struct {
	brokers []string // the bootstrap list, split at commas
	client  *kafka.Client
}

var kafkaGoLog = log.New(os.Stderr, "kafka-go: ", log.Ltime|log.Lmicroseconds)

func newKafkaGo(bootstrap string) (Client, error) {
	brokers := splitBootstrap(bootstrap)
	return &kafkaGo{brokers: brokers, client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}}, nil
}

func (k *kafkaGo) Name() string      { return "kafka-go" }
func (k *kafkaGo) Codecs() []string  { return allCodecs }
func (k *kafkaGo) NullIsEmpty() bool { return true }
func (k *kafkaGo) Close()            {}

func (k *kafkaGo) CreateTopic(ctx context.Context, topic string, n int32, configs map[string]string) error {
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: int(n), ReplicationFactor: int(replicationFactor)}
	for name, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: name, ConfigValue: v})
	}
	resp, err := k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err != nil {
		return err
	}
	return resp.Errors[topic]
}

func (k *kafkaGo) DeleteTopics(ctx context.Context, topics []string) error {
	resp, err := k.client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		return err
	}
	for _, t := range topics {
		if e := resp.Errors[t]; e != nil {
			return fmt.Errorf("%s: %w", t, e)
		}
	}
	return nil
}

func brokerIDsOf(bs []kafka.Broker) []int32 {
	out := make([]int32, 0, len(bs))
	for _, b := range bs {
		out = append(out, int32(b.ID))
	}
	return out
}

func (k *kafkaGo) Metadata(ctx context.Context, topics []string) (*Meta, error) {
	resp, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	out := &Meta{Brokers: map[int32]string{}, Controller: int32(resp.Controller.ID), Topics: map[string]TopicMeta{}}
	for _, b := range resp.Brokers {
		out.Brokers[int32(b.ID)] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	for _, t := range resp.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		tm := TopicMeta{Partitions: map[int32]PartitionMeta{}}
		if t.Error != nil {
			tm.Err = t.Error.Error()
		}
		for _, p := range t.Partitions {
			pm := PartitionMeta{Leader: int32(p.Leader.ID), Replicas: brokerIDsOf(p.Replicas), ISR: brokerIDsOf(p.Isr)}
			if p.Error != nil {
				pm.Err = p.Error.Error()
			}
			tm.Partitions[int32(p.ID)] = pm
		}
		out.Topics[t.Name] = tm
	}
	return out, nil
}

func (k *kafkaGo) CreatePartitions(ctx context.Context, topic string, total int32) error {
	resp, err := k.client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: total}}})
	if err != nil {
		return err
	}
	return resp.Errors[topic]
}

func (k *kafkaGo) AlterConfigs(ctx context.Context, topic string, set map[string]string) error {
	res := kafka.IncrementalAlterConfigsRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}
	for name, v := range set {
		res.Configs = append(res.Configs, kafka.IncrementalAlterConfigsRequestConfig{Name: name, Value: v, ConfigOperation: kafka.ConfigOperationSet})
	}
	resp, err := k.client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{res}})
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return r.Error
		}
	}
	return nil
}

func (k *kafkaGo) AlterConfigsLegacy(ctx context.Context, topic string, all map[string]string) error {
	res := kafka.AlterConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}
	for name, v := range all {
		res.Configs = append(res.Configs, kafka.AlterConfigRequestConfig{Name: name, Value: v})
	}
	resp, err := k.client.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{res}})
	if err != nil {
		return err
	}
	for _, e := range resp.Errors {
		if e != nil {
			return e
		}
	}
	return nil
}

func (k *kafkaGo) DescribeConfigs(ctx context.Context, topic string) (map[string]ConfigValue, error) {
	resp, err := k.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}}})
	if err != nil {
		return nil, err
	}
	out := map[string]ConfigValue{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, r.Error
		}
		for _, e := range r.ConfigEntries {
			// ConfigSource 5 = DEFAULT_CONFIG
			out[e.ConfigName] = ConfigValue{Value: e.ConfigValue, Source: fmt.Sprintf("source %d", e.ConfigSource),
				ReadOnly: e.ReadOnly, IsDefault: e.IsDefault || e.ConfigSource == 5}
		}
	}
	return out, nil
}

var kafkaGoCodecs = map[string]kafka.Compression{
	"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd,
}

type kgoWriterData struct {
	index     int
	partition int32
}

func (k *kafkaGo) Produce(ctx context.Context, topic string, recs []Rec, o ProduceOpts) ([]Ack, error) {
	if o.Idempotent {
		return nil, ErrUnsupported
	}
	acks := make([]Ack, len(recs))
	for i := range acks {
		acks[i] = Ack{Partition: -1, Offset: -1, Err: errors.New("no completion")}
	}
	var mu sync.Mutex
	hash := &kafka.Hash{}
	w := &kafka.Writer{
		Addr:  kafka.TCP(k.brokers...),
		Topic: topic,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
			if d, ok := m.WriterData.(kgoWriterData); ok && d.partition >= 0 {
				return int(d.partition)
			}
			return hash.Balance(m, partitions...)
		}),
		RequiredAcks: kafka.RequireAll,
		Compression:  kafkaGoCodecs[o.Codec],
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 20 * time.Second,
		ReadTimeout:  20 * time.Second,
		MaxAttempts:  3,
		ErrorLogger:  kafkaGoLog,
		Completion: func(msgs []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				d, ok := m.WriterData.(kgoWriterData)
				if !ok {
					continue
				}
				if err != nil {
					acks[d.index] = Ack{Partition: int32(m.Partition), Offset: -1, Err: err}
				} else {
					acks[d.index] = Ack{Partition: int32(m.Partition), Offset: m.Offset}
					if !m.Time.IsZero() {
						acks[d.index].Timestamp = m.Time.UnixMilli()
					}
				}
			}
		},
	}
	if o.Linger {
		w.BatchTimeout = 20 * time.Millisecond
	}
	if o.MaxBatchBytes > 0 {
		w.BatchBytes = int64(o.MaxBatchBytes)
		w.BatchSize = 20
	}
	defer w.Close()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		m := kafka.Message{Key: r.Key, Value: r.Value, WriterData: kgoWriterData{index: i, partition: r.Partition}}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		if r.Timestamp != 0 {
			m.Time = time.UnixMilli(r.Timestamp)
		}
		msgs[i] = m
	}
	err := w.WriteMessages(ctx, msgs...)
	mu.Lock()
	defer mu.Unlock()
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for i, e := range werrs {
			if e != nil && i < len(acks) {
				acks[i].Err = e
				acks[i].Offset = -1
			}
		}
	} else if err != nil {
		return acks, err
	}
	return acks, nil
}

func (k *kafkaGo) listOffsets(ctx context.Context, topic string, reqs []kafka.OffsetRequest) ([]kafka.PartitionOffsets, error) {
	resp, err := k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	return resp.Topics[topic], nil
}

func (k *kafkaGo) Watermarks(ctx context.Context, topic string, n int32) (map[int32][2]int64, error) {
	var reqs []kafka.OffsetRequest
	for p := 0; p < int(n); p++ {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	pos, err := k.listOffsets(ctx, topic, reqs)
	if err != nil {
		return nil, err
	}
	out := map[int32][2]int64{}
	for _, po := range pos {
		if po.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", po.Partition, po.Error)
		}
		out[int32(po.Partition)] = [2]int64{po.FirstOffset, po.LastOffset}
	}
	return out, nil
}

func kafkaGoConsumed(m kafka.Message) Consumed {
	c := Consumed{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value,
		Timestamp: m.Time.UnixMilli(), ProducerID: -2}
	for _, h := range m.Headers {
		c.Headers = append(c.Headers, Header{Key: h.Key, Value: h.Value})
	}
	return c
}

func (k *kafkaGo) ConsumeAll(ctx context.Context, topic string, ends map[int32]int64) ([]Consumed, []string) {
	var (
		mu   sync.Mutex
		out  []Consumed
		errs []string
		wg   sync.WaitGroup
	)
	for p, end := range ends {
		if end == 0 {
			continue
		}
		wg.Add(1)
		go func(p int32, end int64) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: k.brokers, Topic: topic, Partition: int(p),
				MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond, ErrorLogger: kafkaGoLog,
			})
			defer r.Close()
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("partition %d: SetOffset: %v", p, err))
				mu.Unlock()
				return
			}
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("partition %d: stopped before offset %d: %v", p, end-1, err))
					mu.Unlock()
					return
				}
				mu.Lock()
				out = append(out, kafkaGoConsumed(m))
				mu.Unlock()
				if m.Offset >= end-1 {
					return
				}
			}
		}(p, end)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, errs
}

func (k *kafkaGo) OffsetsForTimes(ctx context.Context, topic string, ts map[int32]int64) (map[int32]int64, map[int32]error, error) {
	var reqs []kafka.OffsetRequest
	for p, t := range ts {
		reqs = append(reqs, kafka.TimeOffsetOf(int(p), time.UnixMilli(t)))
	}
	pos, err := k.listOffsets(ctx, topic, reqs)
	if err != nil {
		return nil, nil, err
	}
	offs := map[int32]int64{}
	perr := map[int32]error{}
	for _, po := range pos {
		p := int32(po.Partition)
		switch {
		case po.Error != nil:
			perr[p] = po.Error
		case len(po.Offsets) == 1:
			for o := range po.Offsets {
				offs[p] = o
			}
		case len(po.Offsets) == 0 && po.LastOffset == -1:
			// kafka-go files the "no such record" answer (offset -1, timestamp -1) under
			// LastOffset, since -1 is also the "latest" sentinel
			offs[p] = -1
		default:
			perr[p] = fmt.Errorf("unexpected answer %+v", po)
		}
	}
	return offs, perr, nil
}

// ------------------------------------------------------------------------------- groups

type kafkaGoMember struct {
	cg         *kafka.ConsumerGroup
	mu         sync.Mutex
	assigned   []int32
	lastErr    string
	commitErrs []string
	cancel     context.CancelFunc
	done       chan struct{}
}

func (m *kafkaGoMember) CommitErrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.commitErrs...)
}

func (m *kafkaGoMember) Assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.assigned...)
}
func (m *kafkaGoMember) Consumed() int { return 0 }
func (m *kafkaGoMember) Err() string   { m.mu.Lock(); defer m.mu.Unlock(); return m.lastErr }

func (m *kafkaGoMember) Leave(ctx context.Context) error {
	if m.cg == nil {
		return nil
	}
	m.cancel()
	err := m.cg.Close() // LeaveGroup
	select {
	case <-m.done:
	case <-ctx.Done():
	}
	m.cg = nil
	return err
}

// JoinGroup uses kafka-go's ConsumerGroup, which shows each generation's assignment.
func (k *kafkaGo) JoinGroup(ctx context.Context, group, topic, name string, revokeCommit int64) (GroupMember, error) {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: group, Brokers: k.brokers, Topics: []string{topic},
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 15 * time.Second, JoinGroupBackoff: 300 * time.Millisecond,
		StartOffset: kafka.FirstOffset, Timeout: 10 * time.Second, ErrorLogger: kafkaGoLog,
	})
	if err != nil {
		return nil, err
	}
	c, cancel := context.WithCancel(context.Background())
	m := &kafkaGoMember{cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for c.Err() == nil {
			gen, err := cg.Next(c)
			if err != nil {
				if errors.Is(err, kafka.ErrGroupClosed) || c.Err() != nil {
					return
				}
				m.mu.Lock()
				m.lastErr = err.Error()
				m.mu.Unlock()
				time.Sleep(300 * time.Millisecond)
				continue
			}
			var ps []int32
			for _, pa := range gen.Assignments[topic] {
				ps = append(ps, int32(pa.ID))
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			m.mu.Lock()
			m.assigned = ps
			m.mu.Unlock()
			gen.Start(func(gctx context.Context) {
				<-gctx.Done() // the generation ended (rebalance or close)
				m.mu.Lock()
				m.assigned = nil
				m.mu.Unlock()
				if revokeCommit > 0 && len(ps) > 0 {
					// the next generation waits for this function: the commit happens while
					// the group rebalances, with this generation's id
					offs := map[string]map[int]int64{topic: {}}
					for _, p := range ps {
						offs[topic][int(p)] = revokeCommit
					}
					if err := gen.CommitOffsets(offs); err != nil {
						m.mu.Lock()
						m.commitErrs = append(m.commitErrs, fmt.Sprintf("%s: commit of %v on revoke: %v", name, ps, err))
						m.mu.Unlock()
					}
				}
			})
		}
	}()
	return m, nil
}

// groupReader is the usual kafka-go group consumer: a Reader with GroupID and explicit
// commits (CommitInterval 0 = synchronous CommitMessages).
func (k *kafkaGo) groupReader(group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond,
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 15 * time.Second, JoinGroupBackoff: 300 * time.Millisecond,
		StartOffset: kafka.FirstOffset, CommitInterval: 0, ErrorLogger: kafkaGoLog,
	})
}

func (k *kafkaGo) ConsumeAndCommit(ctx context.Context, group, topic string, n int32, upTo int64) error {
	r := k.groupReader(group, topic)
	defer r.Close()
	at := map[int]kafka.Message{}
	for len(at) < int(n) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read offset %d on %d of %d partitions: %w", upTo-1, len(at), n, err)
		}
		if m.Offset == upTo-1 {
			at[m.Partition] = m
		}
	}
	var msgs []kafka.Message
	for _, m := range at {
		msgs = append(msgs, m)
	}
	return r.CommitMessages(ctx, msgs...) // commits offset+1 = upTo
}

func (k *kafkaGo) CommittedOffsets(ctx context.Context, group, topic string, n int32) (map[int32]int64, error) {
	parts := make([]int, 0, n)
	for p := 0; p < int(n); p++ {
		parts = append(parts, p)
	}
	resp, err := k.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[int32(p.Partition)] = p.CommittedOffset
		}
	}
	return out, nil
}

func (k *kafkaGo) Resume(ctx context.Context, group, topic string, n int32, end int64) (map[int32][]int64, error) {
	r := k.groupReader(group, topic)
	defer r.Close()
	read := map[int32][]int64{}
	doneParts := 0
	for doneParts < int(n) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("%d of %d partitions read to offset %d: %w (read %v)", doneParts, n, end-1, err, read)
		}
		read[int32(m.Partition)] = append(read[int32(m.Partition)], m.Offset)
		if m.Offset == end-1 {
			doneParts++
		}
	}
	return read, nil
}
