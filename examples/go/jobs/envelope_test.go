package jobs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const schemas = "../../../schemas"

func TestTheEmbeddedSchemaIsTheProjectsSchema(t *testing.T) {
	original, err := os.ReadFile(filepath.Join(schemas, "job_envelope.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	if compact(original) != SchemaJSON {
		t.Fatal("jobs/job_envelope.avsc differs from schemas/job_envelope.avsc: copy it again")
	}
}

// Each vector's .avro file decodes to the envelope its .json file holds (Avro JSON
// encoding), and what Encode makes of it decodes to the same (byte for byte the same but for
// the order of map entries, which Go does not keep).
func TestSharedVectors(t *testing.T) {
	vectors, _ := filepath.Glob(filepath.Join(schemas, "vectors", "*.json"))
	if len(vectors) < 2 {
		t.Fatalf("no test vectors in %s", schemas)
	}
	for _, vector := range vectors {
		t.Run(filepath.Base(vector), func(t *testing.T) {
			text, err := os.ReadFile(vector)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := os.ReadFile(strings.TrimSuffix(vector, ".json") + ".avro")
			if err != nil {
				t.Fatal(err)
			}
			envelope, err := Decode(payload)
			if err != nil {
				t.Fatal(err)
			}
			var expected any
			_ = json.Unmarshal(text, &expected)
			if got := normalized(envelope); !reflect.DeepEqual(got, expected) {
				t.Fatalf("decoded\n%v\nwant\n%s", got, text)
			}
			encoded, err := Encode(envelope)
			if err != nil {
				t.Fatal(err)
			}
			if len(encoded) != len(payload) {
				t.Fatalf("encoded %x\nwant    %x", encoded, payload)
			}
			again, err := Decode(encoded)
			if err != nil {
				t.Fatal(err)
			}
			if got := normalized(again); !reflect.DeepEqual(got, expected) {
				t.Fatalf("encoded and decoded\n%v\nwant\n%s", got, text)
			}
		})
	}
}

func TestArgsFromJSONKeepIntegersApartFromDoubles(t *testing.T) {
	decoder := json.NewDecoder(strings.NewReader(`[1, 1.5, "a", [true, null], {"k": 2}]`))
	decoder.UseNumber()
	var raw any
	if err := decoder.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	value, err := Arg(raw)
	if err != nil {
		t.Fatal(err)
	}
	items := value.V.([]Value)
	if _, ok := items[0].V.(int64); !ok {
		t.Fatalf("1 is %T, want int64", items[0].V)
	}
	if _, ok := items[1].V.(float64); !ok {
		t.Fatalf("1.5 is %T, want float64", items[1].V)
	}
	if _, err := Arg(struct{}{}); err == nil {
		t.Fatal("a struct is no job argument")
	}
}

func normalized(envelope *Envelope) any {
	var out any
	asJSON, _ := json.Marshal(avroJSON(envelope))
	_ = json.Unmarshal(asJSON, &out)
	return out
}

// avroJSON is an envelope in Avro's JSON encoding (a union value as {"branch": value}).
func avroJSON(e *Envelope) map[string]any {
	args := make([]any, len(e.Args))
	for i, arg := range e.Args {
		args[i] = valueJSON(arg)
	}
	kwargs := map[string]any{}
	for key, arg := range e.Kwargs {
		kwargs[key] = valueJSON(arg)
	}
	meta := map[string]any{}
	for key, value := range e.Meta {
		meta[key] = value
	}
	out := map[string]any{
		"id": e.ID, "type": e.Type, "queue": e.Queue, "args": args, "kwargs": kwargs,
		"created_at": e.CreatedAt.UnixMilli(), "run_at": optionalTime(e.RunAt),
		"attempt": e.Attempt, "timeout_ms": nil, "expires_at": optionalTime(e.ExpiresAt),
		"meta": meta, "last_error": nil, "unique_key": optionalString(e.UniqueKey),
		"order_key": optionalString(e.OrderKey), "limit_key": optionalString(e.LimitKey),
		"snoozes":        e.Snoozes,
		"batch_id":       optionalString(e.BatchID),
		"keep_result_ms": nil, "chain": nil,
		"retry": map[string]any{
			"max_attempts": e.Retry.MaxAttempts, "initial_delay_ms": e.Retry.InitialDelayMs,
			"max_delay_ms": e.Retry.MaxDelayMs, "multiplier": e.Retry.Multiplier,
			"jitter": e.Retry.Jitter,
		},
	}
	if e.TimeoutMs != nil {
		out["timeout_ms"] = map[string]any{"long": *e.TimeoutMs}
	}
	if e.LastError != nil {
		out["last_error"] = map[string]any{"io.pulsarjobs.v1.JobError": map[string]any{
			"type": e.LastError.Type, "message": e.LastError.Message,
			"traceback": e.LastError.Traceback, "failed_at": e.LastError.FailedAt.UnixMilli(),
			"worker": e.LastError.Worker,
		}}
	}
	return out
}

func optionalString(s *string) any {
	if s == nil {
		return nil
	}
	return map[string]any{"string": *s}
}

func optionalTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return map[string]any{"long": t.UnixMilli()}
}

func valueJSON(value Value) map[string]any {
	var union any
	switch v := value.Plain().(type) {
	case nil:
	case bool:
		union = map[string]any{"boolean": v}
	case int64:
		union = map[string]any{"long": v}
	case float64:
		union = map[string]any{"double": v}
	case string:
		union = map[string]any{"string": v}
	case []byte:
		runes := make([]rune, len(v)) // Avro JSON: one code point per byte
		for i, b := range v {
			runes[i] = rune(b)
		}
		union = map[string]any{"bytes": string(runes)}
	case []any:
		items := make([]any, len(v))
		for i, item := range v {
			arg, _ := Arg(item)
			items[i] = valueJSON(arg)
		}
		union = map[string]any{"array": items}
	case map[string]any:
		entries := map[string]any{}
		for key, item := range v {
			arg, _ := Arg(item)
			entries[key] = valueJSON(arg)
		}
		union = map[string]any{"map": entries}
	default:
		union = map[string]any{"unknown": v}
	}
	return map[string]any{"v": union}
}
