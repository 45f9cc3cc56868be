// Command compat runs the client compatibility scenario with one Go Kafka client
// (franz-go, sarama or kafka-go) against a broker, in phases, so that the broker can be
// restarted between them.
//
//	compat -client franz-go|sarama|kafka-go -bootstrap HOST:PORT[,HOST:PORT...] -phase all|produce|verify|cleanup [-state DIR]
//
// It prints one line per check, `PASS name`, `FAIL name: why` or `SKIP name: why`, and
// exits 1 if any check failed. Comment lines start with `#`; client logs go to stderr.
// Environment: COMPAT_REPLICATION_FACTOR = replication factor of the topics it creates
// (default 1; admin_describe_topic expects that many replicas, all in sync).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Report prints check results in the suite's line format.
type Report struct{ failures int }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (r *Report) Pass(name string) { fmt.Printf("PASS %s\n", name) }

func (r *Report) Fail(name, format string, args ...any) {
	r.failures++
	msg := oneLine(fmt.Sprintf(format, args...))
	if len(msg) > 1500 {
		msg = msg[:1500] + "..."
	}
	fmt.Printf("FAIL %s: %s\n", name, msg)
}

func (r *Report) Skip(name, format string, args ...any) {
	fmt.Printf("SKIP %s: %s\n", name, oneLine(fmt.Sprintf(format, args...)))
}

func (r *Report) Note(format string, args ...any) {
	fmt.Printf("# %s\n", oneLine(fmt.Sprintf(format, args...)))
}

// Check passes when problems is empty, else fails with the first few problems.
func (r *Report) Check(name string, problems []string) {
	if len(problems) == 0 {
		r.Pass(name)
		return
	}
	msg := strings.Join(first(problems, 3), "; ")
	if len(problems) > 3 {
		msg += fmt.Sprintf(" (+%d more)", len(problems)-3)
	}
	r.Fail(name, "%s", msg)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// splitBootstrap turns "host:port[,host:port...]" (the cluster run passes three brokers)
// into the address list every client takes.
func splitBootstrap(bootstrap string) []string {
	var out []string
	for _, a := range strings.Split(bootstrap, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func newClient(name, bootstrap string) (Client, error) {
	switch name {
	case "franz-go":
		return newFranz(bootstrap)
	case "sarama":
		return newSarama(bootstrap)
	case "kafka-go":
		return newKafkaGo(bootstrap)
	}
	return nil, fmt.Errorf("unknown client %q (franz-go, sarama, kafka-go)", name)
}

func main() {
	clientName := flag.String("client", "", "franz-go | sarama | kafka-go")
	bootstrap := flag.String("bootstrap", "", "broker address host:port, or a comma-separated list")
	phase := flag.String("phase", "all", "all | produce | verify | cleanup")
	stateDir := flag.String("state", "", "directory for the state the phases share (required unless -phase all)")
	flag.Parse()
	if *clientName == "" || *bootstrap == "" {
		flag.Usage()
		os.Exit(2)
	}
	switch *phase {
	case "all", "produce", "verify", "cleanup":
	default:
		fmt.Fprintf(os.Stderr, "bad phase %q\n", *phase)
		os.Exit(2)
	}
	if *stateDir == "" {
		if *phase != "all" {
			fmt.Fprintln(os.Stderr, "-state is required for phase", *phase)
			os.Exit(2)
		}
		dir, err := os.MkdirTemp("", "compat-go-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer os.RemoveAll(dir)
		*stateDir = dir
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if v := os.Getenv("COMPAT_REPLICATION_FACTOR"); v != "" {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad COMPAT_REPLICATION_FACTOR %q\n", v)
			os.Exit(2)
		}
		replicationFactor = int16(n)
	}
	rep := &Report{}
	os.Exit(run(*clientName, *bootstrap, *phase, *stateDir, rep))
}

func run(clientName, bootstrap, phase, stateDir string, rep *Report) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "panic: %v\n%s", p, debug.Stack())
			rep.Fail(phase+"_phase", "scenario crashed: %v", p)
			code = 1
		}
	}()
	cl, err := newClient(clientName, bootstrap)
	if err != nil {
		rep.Fail(phase+"_phase", "client setup: %v", err)
		return 1
	}
	defer cl.Close()
	sc := &Scenario{cl: cl, rep: rep, bootstrap: bootstrap}
	statePath := filepath.Join(stateDir, "state-"+clientName+".json")
	if phase == "all" || phase == "produce" {
		suffix := fmt.Sprintf("%d-%04x", time.Now().Unix(), time.Now().UnixNano()&0xffff)
		sc.st = &State{Client: clientName, Topic: "compat-go-" + clientName + "-" + suffix}
		rep.Note("topic %s", sc.st.Topic)
		func() {
			defer func() {
				if err := saveState(statePath, sc.st); err != nil {
					rep.Fail("produce_phase", "writing state: %v", err)
				}
			}()
			sc.produce(context.Background())
		}()
	}
	st, err := loadState(statePath)
	if err != nil {
		rep.Fail(phase+"_phase", "reading the produce phase's state: %v", err)
		return 1
	}
	sc.st = st
	if phase == "all" || phase == "verify" {
		sc.verify(context.Background())
	}
	if phase == "all" || phase == "cleanup" {
		sc.cleanup(context.Background())
	}
	if rep.failures > 0 {
		return 1
	}
	return 0
}

func saveState(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st := &State{}
	return st, json.Unmarshal(b, st)
}
