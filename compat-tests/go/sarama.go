package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// sarama: SyncProducer, Consumer/PartitionConsumer, ConsumerGroup, ClusterAdmin.
type saramaClient struct {
	addrs  []string
	client sarama.Client
	admin  sarama.ClusterAdmin
}

func init() {
	// sarama's own log (connection errors, group rebalances) helps explain failures
	sarama.Logger = log.New(os.Stderr, "sarama: ", log.Ltime|log.Lmicroseconds)
}

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "compat-sarama"
	// the reference broker's version; sarama negotiates down with ApiVersions
	c.Version = sarama.V4_1_0_0
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 20 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 300 * time.Millisecond
	c.Admin.Timeout = 20 * time.Second
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	return c
}

func newSarama(bootstrap string) (Client, error) {
	s := &saramaClient{addrs: splitBootstrap(bootstrap)}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		// the broker may still be starting after a restart
		s.client, err = sarama.NewClient(s.addrs, saramaConfig())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	s.admin, err = sarama.NewClusterAdminFromClient(s.client)
	if err != nil {
		s.client.Close()
		return nil, err
	}
	return s, nil
}

func (s *saramaClient) Name() string      { return "sarama" }
func (s *saramaClient) Codecs() []string  { return allCodecs }
func (s *saramaClient) NullIsEmpty() bool { return false }
func (s *saramaClient) Close()            { _ = s.admin.Close() }

func (s *saramaClient) CreateTopic(ctx context.Context, topic string, n int32, configs map[string]string) error {
	cfg := map[string]*string{}
	for k, v := range configs {
		v := v
		cfg[k] = &v
	}
	return s.admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: replicationFactor, ConfigEntries: cfg}, false)
}

func (s *saramaClient) DeleteTopics(ctx context.Context, topics []string) error {
	for _, t := range topics {
		if err := s.admin.DeleteTopic(t); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
	}
	return nil
}

func (s *saramaClient) Metadata(ctx context.Context, topics []string) (*Meta, error) {
	// a fresh MetadataRequest through a broker, so that the answer is the broker's own
	// (the client's metadata cache would hide deleted or new topics)
	b, err := s.client.LeastLoadedBroker(), error(nil)
	if b == nil {
		return nil, errors.New("no broker available")
	}
	req := sarama.NewMetadataRequest(saramaConfig().Version, topics)
	req.AllowAutoTopicCreation = false
	resp, err := b.GetMetadata(req)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	out := &Meta{Brokers: map[int32]string{}, Controller: resp.ControllerID, Topics: map[string]TopicMeta{}}
	for _, br := range resp.Brokers {
		out.Brokers[br.ID()] = br.Addr()
	}
	for _, t := range resp.Topics {
		if errors.Is(t.Err, sarama.ErrUnknownTopicOrPartition) {
			continue
		}
		tm := TopicMeta{Partitions: map[int32]PartitionMeta{}}
		if t.Err != sarama.ErrNoError {
			tm.Err = t.Err.Error()
		}
		for _, p := range t.Partitions {
			pm := PartitionMeta{Leader: p.Leader, Replicas: p.Replicas, ISR: p.Isr}
			if p.Err != sarama.ErrNoError {
				pm.Err = p.Err.Error()
			}
			tm.Partitions[p.ID] = pm
		}
		out.Topics[t.Name] = tm
	}
	return out, nil
}

func (s *saramaClient) CreatePartitions(ctx context.Context, topic string, total int32) error {
	return s.admin.CreatePartitions(topic, total, nil, false)
}

func (s *saramaClient) AlterConfigs(ctx context.Context, topic string, set map[string]string) error {
	entries := map[string]sarama.IncrementalAlterConfigsEntry{}
	for k, v := range set {
		v := v
		entries[k] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}
	}
	return s.admin.IncrementalAlterConfig(sarama.TopicResource, topic, entries, false)
}

func (s *saramaClient) AlterConfigsLegacy(ctx context.Context, topic string, all map[string]string) error {
	entries := map[string]*string{}
	for k, v := range all {
		v := v
		entries[k] = &v
	}
	return s.admin.AlterConfig(sarama.TopicResource, topic, entries, false)
}

func (s *saramaClient) DescribeConfigs(ctx context.Context, topic string) (map[string]ConfigValue, error) {
	entries, err := s.admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return nil, err
	}
	out := map[string]ConfigValue{}
	for _, e := range entries {
		out[e.Name] = ConfigValue{Value: e.Value, Source: e.Source.String(), ReadOnly: e.ReadOnly,
			IsDefault: e.Default || e.Source == sarama.SourceDefault}
	}
	return out, nil
}

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

// explicitOrHash sends records with an explicit partition there, the others by key hash.
type explicitOrHash struct{ hash sarama.Partitioner }

type saramaMeta struct {
	index     int
	partition int32
}

func (p explicitOrHash) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if md, ok := m.Metadata.(saramaMeta); ok && md.partition >= 0 {
		return md.partition, nil
	}
	return p.hash.Partition(m, n)
}

func (p explicitOrHash) RequiresConsistency() bool { return true }

func bytesEncoder(b []byte) sarama.Encoder {
	if b == nil {
		return nil
	}
	return sarama.ByteEncoder(b)
}

func (s *saramaClient) Produce(ctx context.Context, topic string, recs []Rec, o ProduceOpts) ([]Ack, error) {
	c := saramaConfig()
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Compression = saramaCodecs[o.Codec]
	c.Producer.Timeout = 20 * time.Second
	c.Producer.Retry.Max = 3
	c.Producer.Partitioner = func(topic string) sarama.Partitioner {
		return explicitOrHash{hash: sarama.NewHashPartitioner(topic)}
	}
	c.Net.MaxOpenRequests = 1 // strict produce order per partition
	if o.Idempotent {
		c.Producer.Idempotent = true
	}
	if o.MaxBatchBytes > 0 {
		// sarama caps compressed batches by MaxMessageBytes and requests by message count
		c.Producer.MaxMessageBytes = o.MaxBatchBytes
		c.Producer.Flush.MaxMessages = 20
	}
	if o.Linger {
		c.Producer.Flush.Frequency = 20 * time.Millisecond
	}
	p, err := sarama.NewSyncProducer(s.addrs, c)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Key: bytesEncoder(r.Key), Value: bytesEncoder(r.Value),
			Metadata: saramaMeta{index: i, partition: r.Partition}}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		if r.Timestamp != 0 {
			m.Timestamp = time.UnixMilli(r.Timestamp)
		}
		msgs[i] = m
	}
	acks := make([]Ack, len(recs))
	for i, m := range msgs {
		acks[i] = Ack{Partition: m.Partition, Offset: m.Offset}
	}
	err = p.SendMessages(msgs)
	failed := map[int]error{}
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			if md, ok := pe.Msg.Metadata.(saramaMeta); ok {
				failed[md.index] = pe.Err
			}
		}
	} else if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if e, ok := failed[i]; ok {
			acks[i] = Ack{Partition: m.Partition, Offset: -1, Err: e}
			continue
		}
		acks[i] = Ack{Partition: m.Partition, Offset: m.Offset}
		if !m.Timestamp.IsZero() {
			acks[i].Timestamp = m.Timestamp.UnixMilli()
		}
	}
	return acks, nil
}

func (s *saramaClient) Watermarks(ctx context.Context, topic string, n int32) (map[int32][2]int64, error) {
	if err := s.client.RefreshMetadata(topic); err != nil {
		return nil, err
	}
	out := map[int32][2]int64{}
	for p := int32(0); p < n; p++ {
		lo, err := s.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("partition %d oldest: %w", p, err)
		}
		hi, err := s.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("partition %d newest: %w", p, err)
		}
		out[p] = [2]int64{lo, hi}
	}
	return out, nil
}

func saramaConsumed(m *sarama.ConsumerMessage) Consumed {
	c := Consumed{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
		Timestamp: m.Timestamp.UnixMilli(), ProducerID: -2}
	for _, h := range m.Headers {
		c.Headers = append(c.Headers, Header{Key: string(h.Key), Value: h.Value})
	}
	return c
}

func (s *saramaClient) ConsumeAll(ctx context.Context, topic string, ends map[int32]int64) ([]Consumed, []string) {
	c, err := sarama.NewConsumer(s.addrs, saramaConfig())
	if err != nil {
		return nil, []string{err.Error()}
	}
	defer c.Close()
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
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			errs = append(errs, fmt.Sprintf("partition %d: %v", p, err))
			continue
		}
		wg.Add(1)
		go func(p int32, end int64, pc sarama.PartitionConsumer) {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case m := <-pc.Messages():
					mu.Lock()
					out = append(out, saramaConsumed(m))
					mu.Unlock()
					if m.Offset >= end-1 {
						return
					}
				case e := <-pc.Errors():
					mu.Lock()
					errs = append(errs, fmt.Sprintf("partition %d: %v", p, e.Err))
					mu.Unlock()
				case <-ctx.Done():
					mu.Lock()
					errs = append(errs, fmt.Sprintf("partition %d: stopped before offset %d: %v", p, end-1, ctx.Err()))
					mu.Unlock()
					return
				}
			}
		}(p, end, pc)
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

func (s *saramaClient) OffsetsForTimes(ctx context.Context, topic string, ts map[int32]int64) (map[int32]int64, map[int32]error, error) {
	offs := map[int32]int64{}
	perr := map[int32]error{}
	for p, t := range ts {
		o, err := s.client.GetOffset(topic, p, t)
		if err != nil {
			perr[p] = err
		} else {
			offs[p] = o
		}
	}
	return offs, perr, nil
}

// ------------------------------------------------------------------------------- groups

type saramaMember struct {
	cg           sarama.ConsumerGroup
	topic        string
	onRecord     func(*sarama.ConsumerMessage)
	mu           sync.Mutex
	assigned     []int32
	session      sarama.ConsumerGroupSession
	consumed     int
	lastErr      string
	errs         []string
	cancel       context.CancelFunc
	done         chan struct{}
	name         string
	revokeCommit int64
}

// CommitErrs: sarama reports failed commits on the group's Errors channel, as the other
// errors; the ones seen after a commit on revoke count.
func (m *saramaMember) CommitErrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.errs...)
}

func (m *saramaMember) Setup(sess sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.assigned = append([]int32(nil), sess.Claims()[m.topic]...)
	sort.Slice(m.assigned, func(i, j int) bool { return m.assigned[i] < m.assigned[j] })
	m.session = sess
	return nil
}

func (m *saramaMember) Cleanup(sess sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	owned := m.assigned
	m.assigned = nil
	m.session = nil
	m.mu.Unlock()
	if m.revokeCommit > 0 && len(owned) > 0 {
		// the session ends (a rebalance or Close): commit before giving the partitions up;
		// errors arrive on the Errors channel
		for _, p := range owned {
			sess.MarkOffset(m.topic, p, m.revokeCommit, "")
		}
		sess.Commit()
	}
	return nil
}

func (m *saramaMember) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.mu.Lock()
			m.consumed++
			if m.onRecord != nil {
				m.onRecord(msg)
			}
			m.mu.Unlock()
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (m *saramaMember) Assigned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.assigned...)
}
func (m *saramaMember) Consumed() int { m.mu.Lock(); defer m.mu.Unlock(); return m.consumed }
func (m *saramaMember) Err() string   { m.mu.Lock(); defer m.mu.Unlock(); return m.lastErr }

func (m *saramaMember) Leave(ctx context.Context) error {
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

func (s *saramaClient) startMember(group, topic, name string, revokeCommit int64, onRecord func(*sarama.ConsumerMessage)) (*saramaMember, error) {
	c := saramaConfig()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 15 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 300 * time.Millisecond
	cg, err := sarama.NewConsumerGroup(s.addrs, group, c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaMember{cg: cg, topic: topic, onRecord: onRecord, cancel: cancel, done: make(chan struct{}),
		name: name, revokeCommit: revokeCommit}
	go func() {
		for e := range cg.Errors() {
			m.mu.Lock()
			m.lastErr = e.Error()
			if revokeCommit > 0 && strings.Contains(strings.ToLower(e.Error()), "commit") ||
				errors.Is(e, sarama.ErrRebalanceInProgress) || errors.Is(e, sarama.ErrIllegalGeneration) ||
				errors.Is(e, sarama.ErrUnknownMemberId) {
				m.errs = append(m.errs, fmt.Sprintf("%s: %v", name, e))
			}
			m.mu.Unlock()
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				m.mu.Lock()
				m.lastErr = err.Error()
				m.mu.Unlock()
				time.Sleep(300 * time.Millisecond)
			}
		}
	}()
	return m, nil
}

func (s *saramaClient) JoinGroup(ctx context.Context, group, topic, name string, revokeCommit int64) (GroupMember, error) {
	return s.startMember(group, topic, name, revokeCommit, nil)
}

func (s *saramaClient) ConsumeAndCommit(ctx context.Context, group, topic string, n int32, upTo int64) error {
	seen := map[int32]bool{}
	m, err := s.startMember(group, topic, "committer", 0, func(msg *sarama.ConsumerMessage) {
		if msg.Offset == upTo-1 {
			seen[msg.Partition] = true
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
		ready := len(seen) == int(n) && m.session != nil
		sess := m.session
		nseen := len(seen)
		lastErr := m.lastErr
		m.mu.Unlock()
		if ready {
			for p := int32(0); p < n; p++ {
				sess.MarkOffset(topic, p, upTo, "")
			}
			sess.Commit() // synchronous OffsetCommit; errors go to the Errors channel
			time.Sleep(200 * time.Millisecond)
			if e := m.Err(); e != "" {
				return fmt.Errorf("commit: %s", e)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read offset %d on %d of %d partitions before %v (assigned %v)%s",
				upTo-1, nseen, n, ctx.Err(), m.Assigned(), errSuffix(lastErr))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *saramaClient) CommittedOffsets(ctx context.Context, group, topic string, n int32) (map[int32]int64, error) {
	parts := make([]int32, 0, n)
	for p := int32(0); p < n; p++ {
		parts = append(parts, p)
	}
	resp, err := s.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range parts {
		b := resp.GetBlock(topic, p)
		if b == nil {
			continue
		}
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("partition %d: %w", p, b.Err)
		}
		if b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out, nil
}

func (s *saramaClient) Resume(ctx context.Context, group, topic string, n int32, end int64) (map[int32][]int64, error) {
	read := map[int32][]int64{}
	m, err := s.startMember(group, topic, "resumer", 0, func(msg *sarama.ConsumerMessage) {
		read[msg.Partition] = append(read[msg.Partition], msg.Offset)
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
