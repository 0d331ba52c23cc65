// Package jobs enqueues pulsarjobs jobs from Go and reads their dead letters.
//
// The job envelope is the Avro record of schemas/job_envelope.avsc (embedded here; a test
// checks the copy against the original), encoded with github.com/hamba/avro/v2 and sent with
// github.com/apache/pulsar-client-go. docs/protocol.md describes the contract.
package jobs

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hamba/avro/v2"
)

//go:embed job_envelope.avsc
var schemaFile []byte

// SchemaJSON is the envelope schema as pulsarjobs registers it with Pulsar: compact JSON, so
// that Go and Python producers register the same schema version.
var SchemaJSON = compact(schemaFile)

// Schema is the parsed envelope schema.
var Schema = avro.MustParse(SchemaJSON)

// codec resolves the argument union's list and map branches to []Value and map[string]Value,
// in a configuration of its own (registering them globally would change other users' unions).
var codec = func() avro.API {
	// Lists and maps as Python writes them: items counted, no byte size before each block.
	api := avro.Config{DisableBlockSizeHeader: true}.Freeze()
	api.Register("io.pulsarjobs.v1.Value", Value{})
	api.Register("array", []Value{})
	api.Register("map", map[string]Value{})
	return api
}()

// Value is one job argument: nil, bool, int64, float64, string, []byte, []Value or
// map[string]Value. Use Arg to make one from a plain Go value.
type Value struct {
	V any `avro:"v"`
}

// RetryPolicy says how a failed run is retried (delays in milliseconds).
type RetryPolicy struct {
	MaxAttempts    int32   `avro:"max_attempts"`
	InitialDelayMs int64   `avro:"initial_delay_ms"`
	MaxDelayMs     int64   `avro:"max_delay_ms"`
	Multiplier     float64 `avro:"multiplier"`
	Jitter         float64 `avro:"jitter"`
}

// DefaultRetry is the policy of a job declared without one in Python.
var DefaultRetry = RetryPolicy{
	MaxAttempts: 25, InitialDelayMs: 1000, MaxDelayMs: 3_600_000, Multiplier: 2.0, Jitter: 0.2,
}

// JobError describes the failure of a previous run.
type JobError struct {
	Type      string    `avro:"type"`
	Message   string    `avro:"message"`
	Traceback string    `avro:"traceback"`
	FailedAt  time.Time `avro:"failed_at"`
	Worker    string    `avro:"worker"`
}

// Envelope is one delivery of one job.
type Envelope struct {
	ID        string            `avro:"id"`
	Type      string            `avro:"type"`
	Queue     string            `avro:"queue"`
	Args      []Value           `avro:"args"`
	Kwargs    map[string]Value  `avro:"kwargs"`
	CreatedAt time.Time         `avro:"created_at"`
	Attempt   int32             `avro:"attempt"`
	Retry     RetryPolicy       `avro:"retry"`
	Meta      map[string]string `avro:"meta"`
	Extras    *Extras           `avro:"extras"` // nil: every field of Extras has its default
}

// Extras is what most deliveries leave unset: sent as null when it is all zero values.
type Extras struct {
	RunAt     *time.Time `avro:"run_at"`
	TimeoutMs *int64     `avro:"timeout_ms"`
	ExpiresAt *time.Time `avro:"expires_at"`
	LastError *JobError  `avro:"last_error"`
	UniqueKey *string    `avro:"unique_key"` // unique jobs: the key it holds
	OrderKey  *string    `avro:"order_key"`  // ordered jobs: one of a key at a time
	LimitKey  *string    `avro:"limit_key"`  // concurrency limits: whose slot it takes
	Snoozes   int32      `avro:"snoozes"`    // times it put itself off (Snooze)
	BatchID   *string    `avro:"batch_id"`   // batches: the batch it belongs to
	// Results: milliseconds its return value is kept once it settles; nil: not kept.
	KeepResultMs *int64 `avro:"keep_result_ms"`
	Chain        *Chain `avro:"chain"` // chains: its place and the links after it
	// Debounce: calls of this key collapse into one run; nil: not debounced.
	DebounceKey *string `avro:"debounce_key"`
	// Fair queueing: the key it takes turns by, and its weight (nil: 1); such a job goes to
	// its queue's lane topic <queue>-fair-<i> (docs/flow-control.md).
	FairKey    *string `avro:"fair_key"`
	FairWeight *int32  `avro:"fair_weight"`
	// Why the runs before the last failed, the oldest first, without tracebacks; nil: none.
	EarlierErrors *[]JobError `avro:"earlier_errors"`
}

// Extra is the envelope's extras, all zero values when it has none.
func (e *Envelope) Extra() Extras {
	if e.Extras == nil {
		return Extras{}
	}
	return *e.Extras
}

// Chain is a job's place in a chain of jobs and the links after it.
type Chain struct {
	ID         string     `avro:"id"`
	Link       int32      `avro:"link"`
	Links      int32      `avro:"links"`
	PassResult bool       `avro:"pass_result"`
	Next       []Envelope `avro:"next"`
	Previous   *string    `avro:"previous"` // the link before, which published it; nil: the first
}

// Encode is the message payload of an envelope: its Avro binary encoding, nothing around it.
// Extras of zero values are sent as null, as the schema asks of writers.
func Encode(envelope *Envelope) ([]byte, error) {
	return codec.Marshal(Schema, sent(envelope))
}

// sent is the envelope as it goes on the wire: a copy whose extras, and those of its chain's
// links, are nil when all zero values; the envelope itself when nothing needs that.
func sent(envelope *Envelope) *Envelope {
	extras := envelope.Extras
	if extras == nil || extras.Chain == nil && *extras != (Extras{}) {
		return envelope
	}
	out := *envelope
	if *extras == (Extras{}) {
		out.Extras = nil
		return &out
	}
	chain := *extras.Chain
	chain.Next = make([]Envelope, len(extras.Chain.Next))
	for i := range extras.Chain.Next {
		chain.Next[i] = *sent(&extras.Chain.Next[i])
	}
	copied := *extras
	copied.Chain = &chain
	out.Extras = &copied
	return &out
}

// Decode reads a message payload written with this version of the schema. A payload that
// ends inside the envelope, or goes on after it, is an error (hamba/avro's Unmarshal takes
// both): one written with another schema, such as one from before extras, would otherwise
// read as wrong values.
func Decode(payload []byte) (*Envelope, error) {
	var envelope Envelope
	reader := avro.NewReader(nil, 0, avro.WithReaderConfig(codec)).Reset(payload)
	reader.ReadVal(Schema, &envelope)
	err := reader.Error // io.EOF too: the payload ended inside the envelope
	if err == nil {
		if reader.Peek(); reader.Error == nil { // Peek sets io.EOF at the end of the payload
			err = errors.New("bytes left over after it")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("not a job envelope: %w", err)
	}
	unwrap(&envelope)
	return &envelope, nil
}

// unwrap turns the decoded arguments of an envelope, and of its chain's links, into the
// values Arg makes.
func unwrap(envelope *Envelope) {
	for i, arg := range envelope.Args {
		envelope.Args[i] = Value{V: fromUnion(arg.V)}
	}
	for key, arg := range envelope.Kwargs {
		envelope.Kwargs[key] = Value{V: fromUnion(arg.V)}
	}
	if chain := envelope.Extra().Chain; chain != nil {
		for i := range chain.Next {
			unwrap(&chain.Next[i])
		}
	}
}

// fromUnion turns an argument as hamba/avro decodes a union into `any` ({"branch": value},
// records as maps) into the Go value Arg makes: lists as []Value, maps as map[string]Value.
func fromUnion(decoded any) any {
	union, ok := decoded.(map[string]any)
	if !ok || len(union) != 1 {
		return decoded // null
	}
	for branch, inner := range union {
		switch branch {
		case "array":
			raw, _ := inner.([]any)
			items := make([]Value, len(raw))
			for i, item := range raw {
				items[i] = Value{V: fromUnion(valueOf(item))}
			}
			return items
		case "map":
			raw, _ := inner.(map[string]any)
			entries := make(map[string]Value, len(raw))
			for key, item := range raw {
				entries[key] = Value{V: fromUnion(valueOf(item))}
			}
			return entries
		default:
			return inner
		}
	}
	return nil
}

// valueOf is the union inside a decoded Value record.
func valueOf(record any) any {
	switch r := record.(type) {
	case Value:
		return r.V
	case *Value:
		return r.V
	case map[string]any:
		return r["v"]
	}
	return record
}

// Arg makes a Value of a plain Go value, as encoding/json decodes it (json.Number included):
// integers become long, other numbers double, slices lists and string-keyed maps maps.
func Arg(value any) (Value, error) {
	switch v := value.(type) {
	case nil, bool, int64, float64, string, []byte:
		return Value{V: v}, nil
	case int:
		return Value{V: int64(v)}, nil
	case json.Number:
		if whole, err := v.Int64(); err == nil {
			return Value{V: whole}, nil
		}
		number, err := v.Float64()
		return Value{V: number}, err
	case []any:
		items := make([]Value, len(v))
		for i, item := range v {
			converted, err := Arg(item)
			if err != nil {
				return Value{}, err
			}
			items[i] = converted
		}
		return Value{V: items}, nil
	case map[string]any:
		entries := make(map[string]Value, len(v))
		for key, item := range v {
			converted, err := Arg(item)
			if err != nil {
				return Value{}, err
			}
			entries[key] = converted
		}
		return Value{V: entries}, nil
	}
	return Value{}, fmt.Errorf("%T is not a job argument (null, bool, number, string, bytes, list, map)", value)
}

// Plain is the Go value a Value holds, lists and maps unwrapped.
func (value Value) Plain() any {
	switch v := value.V.(type) {
	case []Value:
		items := make([]any, len(v))
		for i, item := range v {
			items[i] = item.Plain()
		}
		return items
	case map[string]Value:
		entries := make(map[string]any, len(v))
		for key, item := range v {
			entries[key] = item.Plain()
		}
		return entries
	}
	return value.V
}

func compact(text []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, text); err != nil {
		panic(fmt.Sprintf("job_envelope.avsc is not JSON: %v", err))
	}
	return out.String()
}
