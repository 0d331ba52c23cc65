package jobs

import (
	"bytes"
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
// the order of map entries, which Go does not keep). Cut short or with a byte more, it is no
// envelope.
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
			for _, wrong := range [][]byte{payload[:len(payload)-1], append(payload[:len(payload):len(payload)], 0)} {
				if _, err := Decode(wrong); err == nil {
					t.Fatalf("%d bytes of the %d of an envelope decoded without error", len(wrong), len(payload))
				}
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

// The schema asks writers for extras null, not a record of defaults: Encode sends null for
// extras of zero values, in a chain's links too, and leaves the caller's envelope as it was;
// Decode reads the links back with their arguments.
func TestExtrasOfZeroValuesAreSentAsNull(t *testing.T) {
	link := Envelope{
		ID: "2", Type: "second", Queue: "default", Args: []Value{{V: "a"}},
		Kwargs: map[string]Value{}, CreatedAt: time.UnixMilli(1767225600000).UTC(), Attempt: 1,
		Retry: DefaultRetry, Meta: map[string]string{},
	}
	plain, err := Encode(&link)
	if err != nil {
		t.Fatal(err)
	}
	withEmptyExtras := link
	withEmptyExtras.Extras = &Extras{}
	if got, _ := Encode(&withEmptyExtras); !bytes.Equal(got, plain) {
		t.Fatalf("extras of zero values encoded as\n%x\nwant null, as in\n%x", got, plain)
	}
	if withEmptyExtras.Extras == nil {
		t.Fatal("Encode changed the envelope it was given")
	}
	head := link
	head.ID = "1"
	head.Extras = &Extras{Chain: &Chain{ID: "c", Link: 1, Links: 2, Next: []Envelope{withEmptyExtras}}}
	encoded, err := Encode(&head)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := Decode(encoded)
	if err != nil {
		t.Fatal(err)
	}
	next := decoded.Extra().Chain.Next[0]
	if next.Extras != nil {
		t.Fatalf("the chain's link was sent with extras %+v, want null", *next.Extras)
	}
	if arg := next.Args[0].Plain(); arg != "a" {
		t.Fatalf("the chain's link has argument %#v, want \"a\"", arg)
	}
	if again, _ := Encode(&next); !bytes.Equal(again, plain) {
		t.Fatalf("the chain's link re-encoded as\n%x\nwant\n%x", again, plain)
	}
	if head.Extras.Chain.Next[0].Extras == nil {
		t.Fatal("Encode changed the chain's link it was given")
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
	return map[string]any{
		"id": e.ID, "type": e.Type, "queue": e.Queue, "args": args, "kwargs": kwargs,
		"created_at": e.CreatedAt.UnixMilli(), "attempt": e.Attempt, "meta": meta,
		"retry": map[string]any{
			"max_attempts": e.Retry.MaxAttempts, "initial_delay_ms": e.Retry.InitialDelayMs,
			"max_delay_ms": e.Retry.MaxDelayMs, "multiplier": e.Retry.Multiplier,
			"jitter": e.Retry.Jitter,
		},
		"extras": extrasJSON(e.Extras),
	}
}

func extrasJSON(x *Extras) any {
	if x == nil {
		return nil
	}
	out := map[string]any{
		"run_at": optionalTime(x.RunAt), "timeout_ms": optionalLong(x.TimeoutMs),
		"expires_at": optionalTime(x.ExpiresAt), "last_error": nil,
		"unique_key": optionalString(x.UniqueKey), "order_key": optionalString(x.OrderKey),
		"limit_key": optionalString(x.LimitKey), "snoozes": x.Snoozes,
		"batch_id": optionalString(x.BatchID), "keep_result_ms": optionalLong(x.KeepResultMs),
		"chain": nil, "debounce_key": optionalString(x.DebounceKey),
		"fair_key": optionalString(x.FairKey), "fair_weight": nil, "earlier_errors": nil,
	}
	if x.FairWeight != nil {
		out["fair_weight"] = map[string]any{"int": *x.FairWeight}
	}
	if x.LastError != nil {
		out["last_error"] = map[string]any{"io.pulsarjobs.v1.JobError": jobErrorJSON(x.LastError)}
	}
	if x.EarlierErrors != nil {
		earlier := make([]any, len(*x.EarlierErrors))
		for i := range *x.EarlierErrors {
			earlier[i] = jobErrorJSON(&(*x.EarlierErrors)[i])
		}
		out["earlier_errors"] = map[string]any{"array": earlier}
	}
	if x.Chain != nil {
		next := make([]any, len(x.Chain.Next))
		for i := range x.Chain.Next {
			next[i] = avroJSON(&x.Chain.Next[i])
		}
		out["chain"] = map[string]any{"io.pulsarjobs.v1.Chain": map[string]any{
			"id": x.Chain.ID, "link": x.Chain.Link, "links": x.Chain.Links,
			"pass_result": x.Chain.PassResult, "next": next,
		}}
	}
	return map[string]any{"io.pulsarjobs.v1.Extras": out}
}

func optionalLong(n *int64) any {
	if n == nil {
		return nil
	}
	return map[string]any{"long": *n}
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

func jobErrorJSON(e *JobError) map[string]any {
	return map[string]any{
		"type": e.Type, "message": e.Message, "traceback": e.Traceback,
		"failed_at": e.FailedAt.UnixMilli(), "worker": e.Worker,
	}
}
