/*
 * sovren_audit: the native capture path of Sovren's audit trail (postgres/audit.py).
 *
 * sovren_audit_stage() is the statement-level AFTER trigger (transition tables) the plpgsql
 * sovren_audit_stage is: it turns every row of the statement into the same event, the same jsonb
 * keys and values (table, action, accessed_at, query, user_id, details {key, changed}; since revision
 * a4d8c1e6f2b3 an INSERT, COPY or DELETE of BULK_ROWS rows or more into one event per BULK_ROWS rows,
 * details {changed, rows: [{key, user_id}]}: stage_bulk), but keeps
 * the events in this backend's memory (a tuplestore: a bulk load spills to a temporary file at
 * work_mem) instead of an INSERT into audit_pending. A subtransaction's events are dropped when
 * it rolls back; PREPARE TRANSACTION with events pending is refused (they live in this backend).
 *
 * At commit, an XACT_EVENT_PRE_COMMIT callback (after every deferred trigger has fired, so
 * events written by deferred triggers are chained too, and without queueing a constraint
 * trigger event per transaction) takes a chain head's row lock (take_head: the first of the CHAINS
 * heads no other transaction holds, FOR UPDATE SKIP LOCKED from pid % CHAINS + 1; ids advance by
 * CHAINS in a chain, revision 7c3e9a41f0b2), numbers and hashes the events
 * (payload = the event plus v, at, actor, prev_hash as jsonb text; hash = sha256(payload ||
 * event_id) in hex, PG's own sha256) and appends them with one execution of a saved plan per
 * CHAIN_CHUNK events (INSERT ... SELECT FROM unnest of arrays, which also moves the head), as the
 * owner of the trigger function. The lock is held from there to the end of the commit only.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/jsonapi.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "parser/parse_func.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/partcache.h"
#include "utils/rls.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

#define CHAIN_CHUNK 10000		/* events per INSERT at commit: arrays of a bulk load stay small */
#define CHAINS 8				/* chains of the audit trail (revision 7c3e9a41f0b2, compliance/audit_format.py) */
#define SHAPE_CACHE 16			/* statement texts whose shape is remembered (pgbench, ORMs repeat them) */
#define SHAPE_CACHE_MAX_LEN 8192

/* event tuple: table, action, accessed_at (timestamp, UTC), query shape, user_id (jsonb), details */
enum { E_TABLE, E_ACTION, E_AT, E_QUERY, E_USER, E_DETAILS, E_NATTS };
#define BULK_ROWS 1000			/* a statement of this many rows or more is recorded in bulk events of this many */

typedef struct SubRange { SubTransactionId subid; int64 start; } SubRange;
typedef struct Dropped { int64 from; int64 to; } Dropped;

/* This transaction's events; everything lives in xact_cxt, a child of TopTransactionContext. */
static MemoryContext xact_cxt = NULL;
static Tuplestorestate *events = NULL;
static TupleDesc event_desc = NULL;
static int64 n_events = 0;
static SubRange *subs = NULL;	/* open subtransactions that recorded events, innermost last */
static int n_subs = 0, max_subs = 0;
static Dropped *dropped = NULL; /* ranges of events of rolled-back subtransactions */
static int n_dropped = 0, max_dropped = 0;
static Oid chain_owner = InvalidOid;
static Oid chain_nsp = InvalidOid;

/* Per backend: the shape function, the chain's saved plans, the shapes of recent statement texts. */
static Oid shape_fn = InvalidOid, shape_nsp = InvalidOid;
static SPIPlanPtr head_plan = NULL, wait_plan = NULL, append_plan = NULL, move_head_plan = NULL;
static Oid plans_nsp = InvalidOid;
static int stride = CHAINS;		/* CHAINS on split heads; 1 on the one head of the revisions before them */
static Oid heads_rel = InvalidOid, heads_nsp = InvalidOid;	/* audit_chain_head, as last looked up */
static int heads_stride = CHAINS;
static bool heads_known = false;	/* cleared when audit_chain_head's relcache entry is invalidated */

/* The chain head this commit holds below the executor (lock_head, update_head) */
typedef struct HeldHead
{
	Relation rel;				/* NULL: no head held below the executor */
	TupleTableSlot *slot;		/* the locked version */
	EState *estate;
	ResultRelInfo *rri;
} HeldHead;

static HeldHead held;
/* What lock_head and update_head need of audit_chain_head, worked out once per relcache version */
static ExprState **head_checks = NULL;	/* its compiled CHECKs */
static MemoryContext head_checks_cxt = NULL;
static AttrNumber head_chain, head_next, head_hash;	/* its columns (InvalidAttrNumber: not there) */
static bool head_checks_known = false;	/* cleared with heads_known */
static Oid head_checks_rel = InvalidOid;	/* the relation they describe: another schema's trail has its own */

static int spi_latest(SPIPlanPtr plan, Datum *args, const char *nulls, long count);
static char *shape_keys[SHAPE_CACHE];
static text *shape_values[SHAPE_CACHE];
static int shape_next = 0;

PG_FUNCTION_INFO_V1(sovren_audit_stage);
PG_FUNCTION_INFO_V1(sovren_audit_stage_bulk);
void _PG_init(void);

static void
reset_xact(void)
{
	xact_cxt = NULL;			/* freed with TopTransactionContext */
	events = NULL;
	event_desc = NULL;
	n_events = 0;
	subs = NULL;
	n_subs = max_subs = 0;
	dropped = NULL;
	n_dropped = max_dropped = 0;
	chain_owner = chain_nsp = InvalidOid;
	held.rel = NULL;			/* after an error its resources went with the transaction */
}

static void
start_xact_state(Oid owner, Oid nsp)
{
	MemoryContext old;
	ResourceOwner saved_owner;

	xact_cxt = AllocSetContextCreate(TopTransactionContext, "sovren_audit events", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(xact_cxt);
	event_desc = CreateTemplateTupleDesc(E_NATTS);
	TupleDescInitEntry(event_desc, E_TABLE + 1, "table", TEXTOID, -1, 0);
	TupleDescInitEntry(event_desc, E_ACTION + 1, "action", TEXTOID, -1, 0);
	TupleDescInitEntry(event_desc, E_AT + 1, "accessed_at", TIMESTAMPOID, -1, 0);
	TupleDescInitEntry(event_desc, E_QUERY + 1, "query", TEXTOID, -1, 0);
	TupleDescInitEntry(event_desc, E_USER + 1, "user_id", JSONBOID, -1, 0);
	TupleDescInitEntry(event_desc, E_DETAILS + 1, "details", JSONBOID, -1, 0);
	/* the tuplestore's spill file belongs to the owner current at its start: the transaction's,
	 * so that it outlives the statement and a subtransaction that rolls back */
	saved_owner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	events = tuplestore_begin_heap(false, false, work_mem);
	CurrentResourceOwner = saved_owner;
	MemoryContextSwitchTo(old);
	chain_owner = owner;
	chain_nsp = nsp;
}

/* Subtransactions: events are appended in order, so a rolled-back subtransaction's events are
 * the tail recorded since it (or its first child with events) began: that range is dropped. */
static void
note_subxact(void)
{
	SubTransactionId current = GetCurrentSubTransactionId();

	if (current == TopSubTransactionId || (n_subs > 0 && subs[n_subs - 1].subid == current))
		return;
	if (n_subs == max_subs)
	{
		max_subs = max_subs ? max_subs * 2 : 8;
		subs = subs ? repalloc(subs, max_subs * sizeof(SubRange))
			: MemoryContextAlloc(xact_cxt, max_subs * sizeof(SubRange));
	}
	subs[n_subs].subid = current;
	subs[n_subs].start = n_events;
	n_subs++;
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (events == NULL || n_subs == 0 || subs[n_subs - 1].subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		if (subs[n_subs - 1].start < n_events)
		{
			if (n_dropped == max_dropped)
			{
				max_dropped = max_dropped ? max_dropped * 2 : 8;
				dropped = dropped ? repalloc(dropped, max_dropped * sizeof(Dropped))
					: MemoryContextAlloc(xact_cxt, max_dropped * sizeof(Dropped));
			}
			dropped[n_dropped].from = subs[n_subs - 1].start;
			dropped[n_dropped].to = n_events;
			n_dropped++;
		}
		n_subs--;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* the events now belong to the parent: its range starts here unless it has one already */
		if (parentSubid == TopSubTransactionId || (n_subs > 1 && subs[n_subs - 2].subid == parentSubid))
			n_subs--;
		else
			subs[n_subs - 1].subid = parentSubid;
	}
}

/* A value as to_jsonb renders it: numbers as numbers, booleans, times in ISO 8601, jsonb as
 * itself, anything else as its text. */
static void
datum_value(JsonbValue *v, Datum value, bool isnull, Oid type)
{
	Oid base = getBaseType(type);

	if (isnull)
		v->type = jbvNull;
	else if (base == BOOLOID)
	{
		v->type = jbvBool;
		v->val.boolean = DatumGetBool(value);
	}
	else if (base == DATEOID || base == TIMESTAMPOID || base == TIMESTAMPTZOID)
	{
		char buf[MAXDATELEN + 1];

		JsonEncodeDateTime(buf, value, base, NULL);
		v->type = jbvString;
		v->val.string.val = pstrdup(buf);
		v->val.string.len = strlen(buf);
	}
	else if (base == JSONBOID)
	{
		Jsonb *jb = DatumGetJsonbP(value);

		v->type = jbvBinary;
		v->val.binary.data = &jb->root;
		v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	else
	{
		Oid out;
		bool varlena;
		char *s;

		getTypeOutputInfo(type, &out, &varlena);
		s = OidOutputFunctionCall(out, value);
		if ((base == INT2OID || base == INT4OID || base == INT8OID || base == FLOAT4OID ||
			 base == FLOAT8OID || base == NUMERICOID) && IsValidJsonNumber(s, strlen(s)))
		{
			v->type = jbvNumeric;
			v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
																 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		}
		else
		{
			v->type = jbvString;
			v->val.string.val = s;
			v->val.string.len = strlen(s);
		}
	}
}

static void
push_datum(JsonbParseState **state, JsonbIteratorToken token, Datum value, bool isnull, Oid type)
{
	JsonbValue v;

	datum_value(&v, value, isnull, type);
	pushJsonbValue(state, token, &v);
}

static void
push_cstring(JsonbParseState **state, JsonbIteratorToken token, const char *s)
{
	JsonbValue v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, token, &v);
}

/* The table's columns, sorted as the plpgsql path sorts them (text, default collation), with what
 * rendering a value needs (read once per statement, not per row). */
typedef struct Columns
{
	int n;
	int *attnums;
	const char **names;
	Oid *types;					/* base types, by attnum - 1 */
	Bitmapset *key;
	int user_attnum;			/* the user_id column, or 0 */
} Columns;

static int
compare_names(const void *a, const void *b)
{
	const char *x = *(const char *const *) a, *y = *(const char *const *) b;

	return varstr_cmp(x, strlen(x), y, strlen(y), DEFAULT_COLLATION_OID);
}

static Columns
read_columns(Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	Columns c = {0, palloc(desc->natts * sizeof(int)), palloc(desc->natts * sizeof(char *)),
				 palloc(desc->natts * sizeof(Oid)), RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY), 0};
	const char **sorted = palloc(desc->natts * sizeof(char *));

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		sorted[c.n++] = NameStr(att->attname);
		c.types[i] = getBaseType(att->atttypid);
		if (strcmp(NameStr(att->attname), "user_id") == 0)
			c.user_attnum = i + 1;
	}
	qsort(sorted, c.n, sizeof(char *), compare_names);
	for (int i = 0; i < c.n; i++)
	{
		c.names[i] = sorted[i];
		for (int a = 0; a < desc->natts; a++)
			if (!TupleDescAttr(desc, a)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, a)->attname), sorted[i]) == 0)
				c.attnums[i] = a + 1;
	}
	return c;
}

static bool
is_key(const Columns *c, int attnum)
{
	return bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, c->key);
}

/* Two values of a column alike as jsonb values (what the plpgsql path compares) */
static bool
same_datum(const Columns *c, Form_pg_attribute att, Datum x, Datum y)
{
	if (c->types[att->attnum - 1] == NUMERICOID)	/* jsonb compares numbers by value: 1.0 = 1.00 */
		return DatumGetBool(DirectFunctionCall2(numeric_eq, x, y));
	return datum_image_eq(x, y, att->attbyval, att->attlen);
}

static bool
same_value(const Columns *c, TupleTableSlot *a, TupleTableSlot *b, int attnum)
{
	bool anull, bnull;
	Datum x = slot_getattr(a, attnum, &anull), y = slot_getattr(b, attnum, &bnull);

	if (anull || bnull)
		return anull && bnull;
	return same_datum(c, TupleDescAttr(a->tts_tupleDescriptor, attnum - 1), x, y);
}

static bool
same_key(const Columns *c, TupleTableSlot *a, TupleTableSlot *b)
{
	for (int i = 0; i < c->n; i++)
		if (is_key(c, c->attnums[i]) && !same_value(c, a, b, c->attnums[i]))
			return false;
	return true;
}

/* "changed": every column (an insert's, a delete's, a truncate's) */
static void
push_every_column(JsonbParseState **state, const Columns *c)
{
	push_cstring(state, WJB_KEY, "changed");
	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < c->n; i++)
		push_cstring(state, WJB_ELEM, c->names[i]);
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

/* "key": the row's primary key columns, as an object */
static void
push_key(JsonbParseState **state, const Columns *c, TupleTableSlot *row)
{
	push_cstring(state, WJB_KEY, "key");
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < c->n; i++)
		if (is_key(c, c->attnums[i]))
		{
			bool isnull;
			Datum v = slot_getattr(row, c->attnums[i], &isnull);

			push_cstring(state, WJB_KEY, c->names[i]);
			push_datum(state, WJB_VALUE, v, isnull, TupleDescAttr(row->tts_tupleDescriptor, c->attnums[i] - 1)->atttypid);
		}
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* details {key, changed}: changed is every column (old == NULL) or those whose value differs. */
static Jsonb *
build_details(const Columns *c, TupleTableSlot *row, TupleTableSlot *old)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_cstring(&state, WJB_KEY, "changed");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < c->n; i++)
		if (old == NULL || !same_value(c, row, old, c->attnums[i]))
			push_cstring(&state, WJB_ELEM, c->names[i]);
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	push_key(&state, c, row);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

static Datum
user_jsonb(Datum v, Oid type)
{
	JsonbValue jv;

	datum_value(&jv, v, false, type);
	return JsonbPGetDatum(JsonbValueToJsonb(&jv));
}

static Datum
user_value(const Columns *c, TupleTableSlot *row, bool *isnull)
{
	Datum v;

	*isnull = true;				/* no user_id column, or NULL: jsonb null and SQL NULL render alike */
	if (c->user_attnum == 0)
		return (Datum) 0;
	v = slot_getattr(row, c->user_attnum, isnull);
	if (*isnull)
		return (Datum) 0;
	return user_jsonb(v, TupleDescAttr(row->tts_tupleDescriptor, c->user_attnum - 1)->atttypid);
}

/* What SECURITY DEFINER ... SET search_path does for the plpgsql path: the session's search_path
 * must not choose the operators and functions run on the owner's behalf. */
static int
pin_search_path(void)
{
	int level = NewGUCNestLevel();

	set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
					  true, 0, false);
	return level;
}

/* sovren_audit_shape(current_query()), remembered per statement text. */
static text *
query_shape(void)
{
	const char *query = debug_query_string;
	text *shape;
	MemoryContext old;
	int level;

	if (query == NULL)
		return NULL;
	for (int i = 0; i < SHAPE_CACHE; i++)
		if (shape_keys[i] && strcmp(shape_keys[i], query) == 0)
			return shape_values[i];
	level = pin_search_path();
	shape = DatumGetTextPP(OidFunctionCall1(shape_fn, CStringGetTextDatum(query)));
	AtEOXact_GUC(true, level);
	if (strlen(query) > SHAPE_CACHE_MAX_LEN)
		return shape;
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (shape_keys[shape_next])
	{
		pfree(shape_keys[shape_next]);
		pfree(shape_values[shape_next]);
	}
	shape_keys[shape_next] = pstrdup(query);
	shape_values[shape_next] = (text *) PG_DETOAST_DATUM_COPY(PointerGetDatum(shape));
	MemoryContextSwitchTo(old);
	shape = shape_values[shape_next];
	shape_next = (shape_next + 1) % SHAPE_CACHE;
	return shape;
}

static void
find_shape_function(Oid nsp)
{
	Oid argtypes[1] = {TEXTOID};
	List *name = list_make2(makeString(get_namespace_name(nsp)), makeString("sovren_audit_shape"));

	if (shape_nsp == nsp && OidIsValid(shape_fn))
		return;
	shape_fn = LookupFuncName(name, 1, argtypes, false);
	shape_nsp = nsp;
	for (int i = 0; i < SHAPE_CACHE; i++)
		shape_keys[i] = NULL;	/* another schema's function: forget (leaks a few bytes, once) */
}

static void
record_event(Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(xact_cxt);

	note_subxact();
	tuplestore_putvalues(events, event_desc, values, nulls);
	MemoryContextSwitchTo(old);
	n_events++;
}

static void
record_row(Datum *values, bool *nulls, const Columns *c, TupleTableSlot *row, TupleTableSlot *old)
{
	values[E_USER] = user_value(c, row, &nulls[E_USER]);
	values[E_DETAILS] = JsonbPGetDatum(build_details(c, row, old));
	record_event(values, nulls);
}

static int
open_reader(Tuplestorestate *rows)
{
	int reader = tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(rows, reader);
	tuplestore_rescan(rows);
	return reader;
}

/* A bulk statement (an INSERT, COPY or DELETE of BULK_ROWS rows or more): one event per BULK_ROWS
 * rows, in order, details {"changed": [every column], "rows": [{"key": .., "user_id": ..}, ..]}, each
 * row what its own event would have said; the event's user_id is the rows' subject when they share
 * one, else NULL (postgres/audit.py, "Bulk events", says why). */
static void
stage_bulk(Datum *values, bool *nulls, const Columns *c, Tuplestorestate *rows, TupleTableSlot *row)
{
	MemoryContext per_chunk = AllocSetContextCreate(CurrentMemoryContext, "sovren_audit bulk", ALLOCSET_DEFAULT_SIZES);
	Form_pg_attribute user_att = c->user_attnum ? TupleDescAttr(row->tts_tupleDescriptor, c->user_attnum - 1) : NULL;
	bool more = tuplestore_gettupleslot(rows, true, false, row);

	while (more)
	{
		MemoryContext caller = MemoryContextSwitchTo(per_chunk);
		JsonbParseState *state = NULL;
		Datum first_user = (Datum) 0;
		bool first_null = true, shared = true;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		push_every_column(&state, c);
		push_cstring(&state, WJB_KEY, "rows");
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		for (int n = 0; more && n < BULK_ROWS; n++)
		{
			bool isnull = true;
			Datum user = (Datum) 0;

			if (user_att)
				user = slot_getattr(row, c->user_attnum, &isnull);
			if (n == 0)
			{
				first_null = isnull;
				first_user = isnull ? (Datum) 0 : datumCopy(user, user_att->attbyval, user_att->attlen);
			}
			else if (shared && (isnull != first_null || (!isnull && !same_datum(c, user_att, user, first_user))))
				shared = false;
			pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
			push_key(&state, c, row);
			push_cstring(&state, WJB_KEY, "user_id");
			push_datum(&state, WJB_VALUE, user, isnull, user_att ? user_att->atttypid : TEXTOID);
			pushJsonbValue(&state, WJB_END_OBJECT, NULL);
			/* read in the caller's context: a row read back from a spilled tuplestore is allocated there,
			 * and the slot frees it at the next read, after per_chunk's reset */
			MemoryContextSwitchTo(caller);
			more = tuplestore_gettupleslot(rows, true, false, row);
			MemoryContextSwitchTo(per_chunk);
		}
		pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		values[E_DETAILS] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
		nulls[E_USER] = !shared || first_null;
		values[E_USER] = nulls[E_USER] ? (Datum) 0 : user_jsonb(first_user, user_att->atttypid);
		record_event(values, nulls);
		MemoryContextSwitchTo(caller);
		MemoryContextReset(per_chunk);
	}
	MemoryContextDelete(per_chunk);
}

static void
stage_rows(TriggerData *trigdata, Datum *values, bool *nulls, bool bulk)
{
	Relation rel = trigdata->tg_relation;
	Columns c = read_columns(rel);
	bool update = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	Tuplestorestate *rows = TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? trigdata->tg_oldtable : trigdata->tg_newtable;
	TupleTableSlot *row = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	TupleTableSlot *old = update ? MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple) : NULL;
	MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "sovren_audit row", ALLOCSET_DEFAULT_SIZES);

	open_reader(rows);
	if (update)
		open_reader(trigdata->tg_oldtable);
	else if (bulk && tuplestore_tuple_count(rows) >= BULK_ROWS)
	{
		stage_bulk(values, nulls, &c, rows, row);
		MemoryContextDelete(per_row);
		ExecDropSingleTupleTableSlot(row);
		return;
	}
	while (tuplestore_gettupleslot(rows, true, false, row))
	{
		MemoryContext caller = MemoryContextSwitchTo(per_row);

		/* an UPDATE's old and new rows come in step; a row whose key changed is two events */
		if (update && tuplestore_gettupleslot(trigdata->tg_oldtable, true, false, old) && same_key(&c, row, old))
			record_row(values, nulls, &c, row, old);
		else
		{
			record_row(values, nulls, &c, row, NULL);
			if (update && !TTS_EMPTY(old))
				record_row(values, nulls, &c, old, NULL);
		}
		MemoryContextSwitchTo(caller);
		MemoryContextReset(per_row);
	}
	MemoryContextDelete(per_row);
	ExecDropSingleTupleTableSlot(row);
	if (old)
		ExecDropSingleTupleTableSlot(old);
}

/* TRUNCATE (revision 8b4f1d6c2e90): one event for the table, no transition table and no row data;
 * details {"key": null, "changed": [every column]} (a DELETE of every row: its key is no one row's). */
static void
stage_truncate(TriggerData *trigdata, Datum *values, bool *nulls)
{
	Columns c = read_columns(trigdata->tg_relation);
	JsonbParseState *state = NULL;
	JsonbValue null_key = {.type = jbvNull};

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_every_column(&state, &c);
	push_cstring(&state, WJB_KEY, "key");
	pushJsonbValue(&state, WJB_VALUE, &null_key);
	values[E_DETAILS] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
	values[E_USER] = (Datum) 0;
	nulls[E_USER] = true;
	record_event(values, nulls);
}

static void
function_owner(Oid fn, Oid *owner, Oid *nsp)
{
	HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "sovren_audit: cache lookup failed for function %u", fn);
	*owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	*nsp = ((Form_pg_proc) GETSTRUCT(tuple))->pronamespace;
	ReleaseSysCache(tuple);
}

/* The statement trigger: sovren_audit_stage() is AS 'sovren_audit', 'sovren_audit_stage_bulk' since revision
 * a4d8c1e6f2b3 (bulk events), 'sovren_audit_stage' before it (one event per row, whatever the statement's size):
 * which the function links to is the revision's choice, so a downgrade gives the row events back. */
static Datum stage(FunctionCallInfo fcinfo, bool bulk);

Datum
sovren_audit_stage(PG_FUNCTION_ARGS)
{
	return stage(fcinfo, false);
}

Datum
sovren_audit_stage_bulk(PG_FUNCTION_ARGS)
{
	return stage(fcinfo, true);
}

static Datum
stage(FunctionCallInfo fcinfo, bool bulk)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Datum values[E_NATTS];
	bool nulls[E_NATTS] = {false};
	const char *action;
	text *shape;
	Oid owner, nsp;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("sovren_audit_stage must be an AFTER ... FOR EACH STATEMENT trigger")));
	action = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? "INSERT"
		: TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? "UPDATE"
		: TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) ? "TRUNCATE" : "DELETE";
	if (strcmp(action, "TRUNCATE") != 0 &&
		((strcmp(action, "DELETE") == 0 ? trigdata->tg_oldtable : trigdata->tg_newtable) == NULL ||
		 (strcmp(action, "UPDATE") == 0 && trigdata->tg_oldtable == NULL)))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("sovren_audit_stage needs the statement's transition tables (REFERENCING)")));
	function_owner(fcinfo->flinfo->fn_oid, &owner, &nsp);
	if (events == NULL)
		start_xact_state(owner, nsp);
	else if (owner != chain_owner || nsp != chain_nsp)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("sovren_audit: one transaction writes to the audit trails of two schemas")));
	find_shape_function(nsp);
	shape = query_shape();
	/* a row written through a partition is a row of the audited table: its events name the root, as the
	 * parent's trigger would (revision e7a2c9d4b61f); a TRUNCATE names what it emptied (8b4f1d6c2e90) */
	if (strcmp(action, "TRUNCATE") != 0 && trigdata->tg_relation->rd_rel->relispartition)
		values[E_TABLE] = CStringGetTextDatum(get_rel_name(llast_oid(get_partition_ancestors(
			RelationGetRelid(trigdata->tg_relation)))));
	else
		values[E_TABLE] = CStringGetTextDatum(RelationGetRelationName(trigdata->tg_relation));
	values[E_ACTION] = CStringGetTextDatum(action);
	values[E_AT] = TimestampGetDatum(GetCurrentTimestamp());	/* clock_timestamp() AT TIME ZONE 'UTC' */
	values[E_QUERY] = PointerGetDatum(shape);
	nulls[E_QUERY] = shape == NULL;
	if (strcmp(action, "TRUNCATE") == 0)
		stage_truncate(trigdata, values, nulls);
	else
		stage_rows(trigdata, values, nulls, bulk);
	return PointerGetDatum(NULL);
}

/* ---- the chain, at commit ---- */

static void
prepare_plans(Oid nsp)
{
	const char *schema = quote_identifier(get_namespace_name(nsp));
	char *head, *append, *move_head;
	char *wait;
	Oid move_types[3] = {INT8OID, TEXTOID, INT4OID};
	Oid types[14] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
					 TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
					 INT8OID, TEXTOID, INT4OID};
	Oid want[1] = {INT4OID};

	int wanted;

	/* Split heads (revision 7c3e9a41f0b2: next_id) or, on a database migrated to a revision before it
	 * (a downgrade), the one head (event_id, chain 1) and format 2. Looked up again only after
	 * audit_chain_head's relcache entry was invalidated (forget_relation: a downgrade or upgrade
	 * alters or replaces it), so that a running backend follows it without two syscache look-ups at
	 * every commit. */
	if (!heads_known || heads_nsp != nsp)
	{
		heads_rel = get_relname_relid("audit_chain_head", nsp);
		heads_stride = OidIsValid(heads_rel) && get_attnum(heads_rel, "next_id") == InvalidAttrNumber ? 1 : CHAINS;
		heads_nsp = nsp;
		heads_known = OidIsValid(heads_rel);	/* not there (yet): look again next time */
	}
	wanted = heads_stride;
	if (plans_nsp == nsp && stride == wanted && head_plan && wait_plan && append_plan && move_head_plan)
		return;
	if (head_plan)
	{
		SPI_freeplan(head_plan);
		SPI_freeplan(wait_plan);
		SPI_freeplan(append_plan);
		SPI_freeplan(move_head_plan);
		head_plan = wait_plan = append_plan = move_head_plan = NULL;
	}
	stride = wanted;
	if (stride == 1)
	{
		head = psprintf("SELECT chain, event_id + 1, hash FROM %s.audit_chain_head WHERE chain = 1 AND $1 > 0 "
						"FOR UPDATE", schema);
		wait = head;
	}
	else
	{
		head = psprintf("SELECT chain, next_id, hash FROM %s.audit_chain_head "
						"ORDER BY (chain - $1 + %d) %% %d LIMIT 1 FOR UPDATE SKIP LOCKED", schema, CHAINS, CHAINS);
		wait = psprintf("SELECT chain, next_id, hash FROM %s.audit_chain_head WHERE chain = $1 FOR UPDATE", schema);
	}
	append = psprintf(
		"WITH appended AS (INSERT INTO %s.audit_log (event_id, created_at, table_name, action, user_id, actor, "
		"accessed_at, query, event_payload, prev_hash, hash) "
		"SELECT $1 + (x.n - 1) * %d, $2, x.t, x.a, x.u::pg_catalog.uuid, $3, x.acc, x.q, x.p, x.ph, x.h "
		"FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7), "
		"pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11)) "
		"WITH ORDINALITY AS x(t, a, u, acc, q, p, ph, h, n)) "
		"UPDATE %s.audit_chain_head SET %s = $12 - %d, hash = $13 WHERE chain = $14", schema, stride, schema,
		stride == 1 ? "event_id" : "next_id", stride == 1 ? 1 : 0);
	/* the head's move when the rows were written below the executor (write_rows): $1 the chain's next id */
	move_head = psprintf("UPDATE %s.audit_chain_head SET %s = $1 - %d, hash = $2 WHERE chain = $3", schema,
						 stride == 1 ? "event_id" : "next_id", stride == 1 ? 1 : 0);
	/* generic plans: a custom plan would be planned again at every commit */
	head_plan = SPI_prepare_cursor(head, 1, want, CURSOR_OPT_GENERIC_PLAN);
	wait_plan = SPI_prepare_cursor(wait, 1, want, CURSOR_OPT_GENERIC_PLAN);
	append_plan = SPI_prepare_cursor(append, 14, types, CURSOR_OPT_GENERIC_PLAN);
	move_head_plan = SPI_prepare_cursor(move_head, 3, move_types, CURSOR_OPT_GENERIC_PLAN);
	if (head_plan == NULL || wait_plan == NULL || append_plan == NULL || move_head_plan == NULL)
		elog(ERROR, "sovren_audit: preparing the chain's statements failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(head_plan);
	SPI_keepplan(wait_plan);
	SPI_keepplan(append_plan);
	SPI_keepplan(move_head_plan);
	plans_nsp = nsp;
}

typedef struct Chunk
{
	int n, cap;
	Datum *cols[8];				/* table, action, user_id, accessed_at, query, payload, prev_hash, hash */
	bool *nulls[8];
} Chunk;

enum { C_TABLE, C_ACTION, C_USER, C_AT, C_QUERY, C_PAYLOAD, C_PREV, C_HASH };

/*
 * The payload of the plpgsql chain, (event || {v, at, actor, chain, prev_hash})::text, written as
 * that text directly. Why: building it as a jsonb value (a parse state, the details copied in,
 * the keys sorted, the value flattened, then printed) was about a tenth of a bulk COPY's backend.
 * The text is the one jsonb prints: its keys are a fixed set, so their order is known (jsonb
 * orders keys by length, then bytes: v, at, actor, chain, query, table, action, details, user_id,
 * prev_hash, accessed_at; format 2 has no chain), and every value is printed by the function
 * jsonb's output uses for it (escape_json for strings, JsonEncodeDateTime for timestamps,
 * JsonbToCString for details and user_id). audit_log's CHECK and `audit verify` rely on it being
 * exactly jsonb's text; tests/integration/test_audit_native.py asserts payload = payload::jsonb::text.
 */
static void
put_key(StringInfo out, const char *key)
{
	appendStringInfoString(out, ", \"");
	appendStringInfoString(out, key);
	appendStringInfoString(out, "\": ");
}

static void
put_timestamp(StringInfo out, Timestamp at)
{
	char buf[MAXDATELEN + 1];

	escape_json(out, JsonEncodeDateTime(buf, TimestampGetDatum(at), TIMESTAMPOID, NULL));
}

static void
put_jsonb(StringInfo out, Jsonb *value)
{
	if (value == NULL)
		appendStringInfoString(out, "null");
	else
		JsonbToCString(out, &value->root, VARSIZE(value));
}

/* The part of every payload of a commit that is the same for all its events: created_at, the actor and
 * the chain are the commit's; rendered once, not once per event. */
static char *
payload_head(Timestamp at, const char *actor, int chain)
{
	StringInfoData out;

	initStringInfo(&out);
	/* format 3: format 2 and the chain (audit_format.py) */
	appendStringInfo(&out, "{\"v\": %d, \"at\": ", stride == 1 ? 2 : 3);
	put_timestamp(&out, at);
	put_key(&out, "actor");
	escape_json(&out, actor);
	if (stride != 1)
	{
		put_key(&out, "chain");
		appendStringInfo(&out, "%d", chain);
	}
	put_key(&out, "query");
	return out.data;
}

static char *
payload_text(const char *head, Datum *values, bool *nulls, const char *prev)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoString(&out, head);
	if (nulls[E_QUERY])
		appendStringInfoString(&out, "null");
	else
		escape_json(&out, TextDatumGetCString(values[E_QUERY]));
	put_key(&out, "table");
	escape_json(&out, TextDatumGetCString(values[E_TABLE]));
	put_key(&out, "action");
	escape_json(&out, TextDatumGetCString(values[E_ACTION]));
	put_key(&out, "details");
	put_jsonb(&out, DatumGetJsonbP(values[E_DETAILS]));
	put_key(&out, "user_id");
	put_jsonb(&out, nulls[E_USER] ? NULL : DatumGetJsonbP(values[E_USER]));
	put_key(&out, "prev_hash");
	escape_json(&out, prev);
	put_key(&out, "accessed_at");
	put_timestamp(&out, DatumGetTimestamp(values[E_AT]));
	appendStringInfoChar(&out, '}');
	return out.data;
}

/* encode(digest(payload || event_id::text, 'sha256'), 'hex'), with the commit's one context (creating
 * one per event, an OpenSSL context and its resource-owner entry, cost more than the hash of a short
 * payload) */
static char *
event_hash(pg_cryptohash_ctx *ctx, const char *payload, int64 id)
{
	uint8 digest[PG_SHA256_DIGEST_LENGTH];
	char number[24];
	char *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	snprintf(number, sizeof(number), INT64_FORMAT, id);
	if (pg_cryptohash_init(ctx) < 0 || pg_cryptohash_update(ctx, (const uint8 *) payload, strlen(payload)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) number, strlen(number)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "sovren_audit: sha256 failed: %s", pg_cryptohash_error(ctx));
	hex[hex_encode((const char *) digest, PG_SHA256_DIGEST_LENGTH, hex)] = '\0';
	return hex;
}

static char *
user_text(Datum *values, bool *nulls)
{
	JsonbValue v;

	if (nulls[E_USER] || !JsonbExtractScalar(&DatumGetJsonbP(values[E_USER])->root, &v) || v.type == jbvNull)
		return NULL;
	if (v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
}

static ArrayType *
chunk_array(Chunk *chunk, int col, Oid type)
{
	int dims[1] = {chunk->n}, lbs[1] = {1};
	int16 len;
	bool byval;
	char align;

	get_typlenbyvalalign(type, &len, &byval, &align);
	return construct_md_array(chunk->cols[col], chunk->nulls[col], 1, dims, lbs, type, len, byval, align);
}

static void
append_chunk(Chunk *chunk, int chain, int64 first, TimestampTz at, const char *actor, const char *head)
{
	Datum args[14];
	char nulls[14];

	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int64GetDatum(first);
	args[1] = TimestampTzGetDatum(at);
	args[2] = CStringGetTextDatum(actor);
	for (int col = C_TABLE; col <= C_HASH; col++)
		args[3 + col] = PointerGetDatum(chunk_array(chunk, col, col == C_AT ? TIMESTAMPTZOID : TEXTOID));
	args[11] = Int64GetDatum(first + (int64) chunk->n * stride);	/* the chain's next id */
	args[12] = CStringGetTextDatum(head);
	args[13] = Int32GetDatum(chain);
	if (spi_latest(append_plan, args, nulls, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "sovren_audit: appending %d events to the chain failed", chunk->n);
}

/* ---- writing audit_log rows below the executor ---- */

/*
 * Why: perf on a backend committing two-row transactions gave the chain's one SPI INSERT 39 % of
 * all samples, half of it fixed costs the executor pays at every execution of the saved plan:
 * ExecutorStart, the partition's ResultRelInfo built again for each routed commit, and with it
 * audit_log_columns_match read back from its stored text (stringToNode) and compiled
 * (ExecPrepareExpr). Here the rows of a commit go straight to the partition; what lasts across
 * transactions (the compiled CHECK, where each column lives) is kept per partition in a long-lived
 * context and dropped when the partition's relcache entry is invalidated (relcache callback forget_relation) or
 * any function is redefined (syscache callback on pg_proc). No library does this: it is the part
 * of nodeModifyTable.c / copyfrom.c that an insert of known rows into one table needs.
 *
 * What the executor does on INSERT INTO audit_log, and what happens to each step here:
 * - permission (ExecCheckRTPerms): INSERT on audit_log for the current user (the chain's owner),
 *   pg_class_aclcheck; a grant by column only goes to the executor;
 * - the target's lock: RowExclusiveLock on audit_log and on the partition, as the executor takes;
 * - routing (ExecFindPartition): the same range search over the relcache's partition descriptor
 *   (RelationGetPartitionDesc, omitting partitions being detached, as DML does), with
 *   partition_range_datum_bsearch and the partition key's own comparison function; the partition
 *   set lives in the relcache, so a partition created, attached or detached is seen at the next
 *   commit. No partition for created_at: the executor path runs and raises its own error;
 * - BEFORE/AFTER/INSTEAD row triggers and statement triggers on INSERT, transition tables,
 *   foreign keys (RI triggers), row security that applies to the owner (FORCE), generated or
 *   extra columns (defaults), a foreign or sub-partitioned partition: none exists on audit_log
 *   as declared; where one does, the commit takes the executor path (append_plan) instead, so
 *   that it happens exactly as before;
 * - constraints (ExecConstraints, called as is): NOT NULL and every CHECK of the partition, the
 *   expressions compiled once per relcache version the way ExecRelCheck compiles them
 *   (stringToNode of the catalog's ccbin, expression_planner, ExecInitExpr) and handed to it in
 *   ri_ConstraintExprs, so that a failing row raises the executor's own error;
 * - the heap insert: table_multi_insert (heap_multi_insert) of up to WRITE_BATCH rows, with a
 *   BulkInsertState for a bulk load, as COPY FROM does; the partition check is skipped as the
 *   executor skips it for a row it routed itself;
 * - indexes: ExecOpenIndices / ExecInsertIndexTuples on a ResultRelInfo built per commit
 *   (InitResultRelInfo, internal executor API), so unique violations raise the usual error.
 * Internal APIs used: InitResultRelInfo, ExecOpenIndices, ExecInsertIndexTuples, ExecCloseIndices,
 * ExecConstraints, RelationGetPartitionDesc, RelationGetPartitionKey, partition_range_datum_bsearch,
 * expression_planner, ExecInitExpr.
 */
#define WRITE_BATCH 1000		/* rows per table_multi_insert, as COPY FROM buffers them */
#define SORTED_INDEX_ROWS 1000	/* from this many rows a commit's entries of a sortable index go in key order */
#define PART_CACHE 4			/* partitions whose compiled CHECKs are kept (this month, the next, default) */

/* audit_log's columns, in the order the rows are built */
enum { L_ID, L_CREATED, L_TABLE, L_ACTION, L_USER, L_ACTOR, L_ACCESSED, L_QUERY, L_PAYLOAD, L_PREV, L_HASH, L_NATTS };
static const char *const log_columns[L_NATTS] = {
	"event_id", "created_at", "table_name", "action", "user_id", "actor", "accessed_at", "query",
	"event_payload", "prev_hash", "hash"};

typedef struct PartEntry
{
	Oid relid;					/* InvalidOid: unused */
	bool stale;					/* its relcache entry was invalidated: rebuilt at the next use */
	MemoryContext cxt;
	ExprState **checks;			/* NULL: let ExecRelCheck compile (and complain about) them */
	AttrNumber attnums[L_NATTS];
} PartEntry;

static PartEntry part_cache[PART_CACHE];
static int part_next = 0;

typedef struct RowWriter
{
	Relation parent, part;
	EState *estate;
	ResultRelInfo *rri;
	PartEntry *entry;
	TupleTableSlot **slots;
	int nslots;
	BulkInsertState bistate;
	CommandId cid;
	int64 written;
	int nindexes;				/* all of the partition's indexes; rri->ri_NumIndices: those written per row */
	Tuplesortstate **sorts;		/* [ri_NumIndices, nindexes): entries kept back, written sorted at the end */
} RowWriter;

static void keep_back_indexes(RowWriter *w, int64 rows);

static void
forget_relation(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == heads_rel)
		heads_known = head_checks_known = false;
	for (int i = 0; i < PART_CACHE; i++)
		if (!OidIsValid(relid) || part_cache[i].relid == relid)
			part_cache[i].stale = true;
}

static void
forget_functions(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_relation(arg, InvalidOid);	/* a function of a CHECK may have been redefined */
}

static bool
inserts_fire_triggers(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	return t && (t->trig_insert_before_row || t->trig_insert_after_row || t->trig_insert_instead_row ||
				 t->trig_insert_before_statement || t->trig_insert_after_statement || t->trig_insert_new_table);
}

/* A relation's CHECKs compiled, in the current memory context, as ExecRelCheck does on first use in
 * each statement (it reads and plans their stored text again each time): NULL when it has none, or
 * when the relcache has not loaded them all (ExecRelCheck then compiles, and complains about, them). */
static ExprState **
compile_checks(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	ExprState **checks;

	if (constr == NULL || constr->num_check == 0 || constr->num_check != rel->rd_rel->relchecks)
		return NULL;
	checks = palloc(constr->num_check * sizeof(ExprState *));
	for (int i = 0; i < constr->num_check; i++)
		checks[i] = ExecInitExpr(expression_planner(stringToNode(constr->check[i].ccbin)), NULL);
	return checks;
}

/* The partition's compiled CHECKs and column numbers, built once per relcache version. Called with
 * every lock of the commit taken, so no invalidation arrives while the entry is in use. */
static PartEntry *
part_entry(Relation part)
{
	Oid relid = RelationGetRelid(part);
	TupleDesc desc = RelationGetDescr(part);
	PartEntry *e = NULL;
	MemoryContext cxt, old;
	int found = 0, columns = 0;

	for (int i = 0; i < PART_CACHE && e == NULL; i++)
		if (part_cache[i].relid == relid)
			e = &part_cache[i];
	if (e && !e->stale)
		return e;
	if (e == NULL)
	{
		e = &part_cache[part_next];
		part_next = (part_next + 1) % PART_CACHE;
	}
	if (e->cxt)
		MemoryContextDelete(e->cxt);
	e->relid = InvalidOid;
	e->cxt = NULL;
	/* built under the transaction first: an error half way leaves nothing behind */
	cxt = AllocSetContextCreate(CurTransactionContext, "sovren_audit partition", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	e->checks = compile_checks(part);
	for (int c = 0; c < L_NATTS; c++)
		e->attnums[c] = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		for (int c = 0; c < L_NATTS; c++)
			if (strcmp(NameStr(att->attname), log_columns[c]) == 0)
			{
				e->attnums[c] = att->attnum;
				found++;
			}
	}
	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, TopMemoryContext);
	e->cxt = cxt;
	e->relid = relid;
	e->stale = false;
	/* a column more than these (it would get its default) or one missing: the executor's business */
	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped)
			columns++;
	if (found != L_NATTS || columns != L_NATTS)
		e->attnums[0] = InvalidAttrNumber;
	return e;
}

/* The partition of audit_log that a row created at `at` goes to, as ExecFindPartition finds it,
 * or InvalidOid when there is none or audit_log is not partitioned by created_at alone. */
static Oid
route(Relation parent, TimestampTz at)
{
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionDesc pd;
	Datum values[1] = {TimestampTzGetDatum(at)};
	bool equal = false;
	int index;

	if (key == NULL || get_partition_strategy(key) != PARTITION_STRATEGY_RANGE || key->partnatts != 1 ||
		key->partexprs != NIL || key->partattrs[0] != get_attnum(RelationGetRelid(parent), "created_at") ||
		key->parttypid[0] != TIMESTAMPTZOID)
		return InvalidOid;
	pd = RelationGetPartitionDesc(parent, true);
	if (pd->nparts == 0)
		return InvalidOid;
	index = pd->boundinfo->indexes[partition_range_datum_bsearch(key->partsupfunc, key->partcollation,
																 pd->boundinfo, 1, values, &equal) + 1];
	if (index < 0)
		index = pd->boundinfo->default_index;
	if (index < 0 || !pd->is_leaf[index])
		return InvalidOid;
	return pd->oids[index];
}

/* Ready to write this commit's rows to audit_log in schema nsp below the executor, or NULL when
 * anything in the list above needs the executor: then the caller appends through append_plan. */
static RowWriter *
open_writer(Oid nsp, TimestampTz at, int64 rows)
{
	Oid parent_oid = get_relname_relid("audit_log", nsp), part_oid;
	RowWriter *w;
	Relation parent, part;
	PartEntry *e;

	if (!OidIsValid(parent_oid))
		return NULL;
	parent = table_open(parent_oid, RowExclusiveLock);
	if (parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE ||
		pg_class_aclcheck(parent_oid, GetUserId(), ACL_INSERT) != ACLCHECK_OK ||
		check_enable_rls(parent_oid, InvalidOid, false) == RLS_ENABLED || inserts_fire_triggers(parent) ||
		!OidIsValid(part_oid = route(parent, at)))
	{
		table_close(parent, NoLock);
		return NULL;
	}
	part = table_open(part_oid, RowExclusiveLock);
	if (part->rd_rel->relkind != RELKIND_RELATION || inserts_fire_triggers(part) ||
		check_enable_rls(part_oid, InvalidOid, false) == RLS_ENABLED ||
		(part->rd_att->constr && part->rd_att->constr->has_generated_stored))
	{
		table_close(part, NoLock);
		table_close(parent, NoLock);
		return NULL;
	}
	w = palloc0(sizeof(RowWriter));
	w->parent = parent;
	w->part = part;
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, part, 0, NULL, 0);
	ExecOpenIndices(w->rri, false);	/* the last lock taken: no invalidation from here on */
	e = part_entry(part);
	if (!AttributeNumberIsValid(e->attnums[0]))
	{
		ExecCloseIndices(w->rri);
		FreeExecutorState(w->estate);
		table_close(part, NoLock);
		table_close(parent, NoLock);
		return NULL;
	}
	w->entry = e;
	w->rri->ri_ConstraintExprs = e->checks;
	w->nslots = (int) Min(rows, WRITE_BATCH);
	w->slots = palloc(w->nslots * sizeof(TupleTableSlot *));
	for (int i = 0; i < w->nslots; i++)
		w->slots[i] = table_slot_create(part, NULL);
	w->bistate = rows > WRITE_BATCH ? GetBulkInsertState() : NULL;
	w->cid = GetCurrentCommandId(true);
	w->estate->es_output_cid = w->cid;
	keep_back_indexes(w, rows);
	return w;
}

/* A big commit's entries of audit_log's secondary indexes, written in key order (issue 13, part 7).
 *
 * ix_audit_log_user_id_accessed_at is keyed by the subject's user_id, a random UUID: a COPY of
 * 100,000 users gave 100,000 inserts, each descending to a leaf of its own, out of the CPU's caches
 * (measured: dropping that index cut a 100,000-row commit by about a quarter). Sorted first, as
 * CREATE INDEX sorts (tuplesort with the index's own comparators), consecutive entries fall on the
 * same leaf, still cached. Only what ExecInsertIndexTuples would insert with no check of its own is
 * kept back: a ready b-tree that is not unique, has no predicate and is no exclusion constraint; the
 * primary key (event ids ascend: each entry already lands on the rightmost leaf) and anything else stay
 * with the executor, row by row. Small commits keep the row-by-row path (a sort would cost more). */
static void
keep_back_indexes(RowWriter *w, int64 rows)
{
	ResultRelInfo *rri = w->rri;
	int direct = 0, budget;

	w->nindexes = rri->ri_NumIndices;
	if (rows < SORTED_INDEX_ROWS || w->nindexes == 0)
		return;
	w->sorts = palloc0(w->nindexes * sizeof(Tuplesortstate *));
	for (int i = 0; i < w->nindexes; i++)	/* the kept-back ones go to the end of the arrays */
	{
		Relation index = rri->ri_IndexRelationDescs[i];
		IndexInfo *info = rri->ri_IndexRelationInfo[i];
		bool sortable = index->rd_rel->relam == BTREE_AM_OID && !info->ii_Unique && info->ii_Predicate == NIL &&
			info->ii_ExclusionOps == NULL && info->ii_ReadyForInserts;

		if (!sortable)
		{
			rri->ri_IndexRelationDescs[i] = rri->ri_IndexRelationDescs[direct];
			rri->ri_IndexRelationInfo[i] = rri->ri_IndexRelationInfo[direct];
			rri->ri_IndexRelationDescs[direct] = index;
			rri->ri_IndexRelationInfo[direct] = info;
			direct++;
		}
	}
	/* The sorts are all held until the end of the commit: they share one maintenance_work_mem, as a
	 * parallel CREATE INDEX's workers share theirs (each with its own, k kept-back indexes took k times
	 * the setting at once; an administrator's 1 GB for index builds became k GB per big commit). */
	budget = direct < w->nindexes ? Max(maintenance_work_mem / (w->nindexes - direct), 64) : 0;
	for (int i = direct; i < w->nindexes; i++)
		w->sorts[i] = tuplesort_begin_index_btree(w->part, rri->ri_IndexRelationDescs[i], false, false,
												  budget, NULL, TUPLESORT_NONE);
	rri->ri_NumIndices = direct;	/* what ExecInsertIndexTuples writes row by row */
}

static void
keep_back_entries(RowWriter *w, TupleTableSlot *slot)
{
	ExprContext *econtext = GetPerTupleExprContext(w->estate);
	Datum values[INDEX_MAX_KEYS];
	bool isnull[INDEX_MAX_KEYS];

	econtext->ecxt_scantuple = slot;
	for (int i = w->rri->ri_NumIndices; i < w->nindexes; i++)
	{
		FormIndexDatum(w->rri->ri_IndexRelationInfo[i], slot, w->estate, values, isnull);
		tuplesort_putindextuplevalues(w->sorts[i], w->rri->ri_IndexRelationDescs[i], &slot->tts_tid, values, isnull);
	}
}

static void
write_kept_back(RowWriter *w)
{
	Datum values[INDEX_MAX_KEYS];
	bool isnull[INDEX_MAX_KEYS];

	for (int i = w->rri->ri_NumIndices; i < w->nindexes; i++)
	{
		Relation index = w->rri->ri_IndexRelationDescs[i];
		IndexTuple itup;

		tuplesort_performsort(w->sorts[i]);
		while ((itup = tuplesort_getindextuple(w->sorts[i], true)) != NULL)
		{
			index_deform_tuple(itup, RelationGetDescr(index), values, isnull);
			index_insert(index, values, isnull, &itup->t_tid, w->part, UNIQUE_CHECK_NO, false,
						 w->rri->ri_IndexRelationInfo[i]);
			CHECK_FOR_INTERRUPTS();
		}
		tuplesort_end(w->sorts[i]);
	}
	w->rri->ri_NumIndices = w->nindexes;	/* ExecCloseIndices closes them all */
}

/* Writes chunk->n rows, event ids from `first`: constraints, heap, indexes, as the executor would. */
static void
write_rows(RowWriter *w, Chunk *chunk, int64 first, TimestampTz at, Datum actor)
{
	const AttrNumber *at_ = w->entry->attnums;
	int natts = RelationGetDescr(w->part)->natts;

	for (int start = 0; start < chunk->n; start += w->nslots)
	{
		int n = Min(w->nslots, chunk->n - start);

		for (int s = 0; s < n; s++)
		{
			TupleTableSlot *slot = w->slots[s];
			Datum *v = slot->tts_values;
			bool *isnull = slot->tts_isnull;
			int i = start + s;

			ExecClearTuple(slot);
			for (int a = 0; a < natts; a++)
				isnull[a] = true;	/* dropped columns */
#define SET(col, value, null) (v[at_[col] - 1] = (value), isnull[at_[col] - 1] = (null))
			SET(L_ID, Int64GetDatum(first + (int64) i * stride), false);	/* ids advance by stride in a chain */
			SET(L_CREATED, TimestampTzGetDatum(at), false);
			SET(L_TABLE, chunk->cols[C_TABLE][i], false);
			SET(L_ACTION, chunk->cols[C_ACTION][i], false);
			SET(L_USER, chunk->nulls[C_USER][i] ? (Datum) 0
				: DirectFunctionCall1(uuid_in, CStringGetDatum(TextDatumGetCString(chunk->cols[C_USER][i]))),
				chunk->nulls[C_USER][i]);
			SET(L_ACTOR, actor, false);
			SET(L_ACCESSED, chunk->cols[C_AT][i], false);	/* a UTC timestamp is the same instant */
			SET(L_QUERY, chunk->cols[C_QUERY][i], chunk->nulls[C_QUERY][i]);
			SET(L_PAYLOAD, chunk->cols[C_PAYLOAD][i], false);
			SET(L_PREV, chunk->cols[C_PREV][i], chunk->nulls[C_PREV][i]);
			SET(L_HASH, chunk->cols[C_HASH][i], false);
#undef SET
			ExecStoreVirtualTuple(slot);
			if (w->part->rd_att->constr)
				ExecConstraints(w->rri, slot, w->estate);
			ResetPerTupleExprContext(w->estate);
		}
		table_multi_insert(w->part, w->slots, n, w->cid, 0, w->bistate);
		for (int s = 0; s < n; s++)
		{
			if (w->rri->ri_NumIndices > 0)
				ExecInsertIndexTuples(w->rri, w->slots[s], w->estate, false, false, NULL, NIL);
			if (w->nindexes > w->rri->ri_NumIndices)
				keep_back_entries(w, w->slots[s]);
			ResetPerTupleExprContext(w->estate);
		}
		w->written += n;
	}
}

static void
close_writer(RowWriter *w)
{
	write_kept_back(w);
	if (w->bistate)
	{
		FreeBulkInsertState(w->bistate);
		table_finish_bulk_insert(w->part, 0);
	}
	for (int i = 0; i < w->nslots; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->part, NoLock);	/* the locks are kept to the end of the transaction */
	table_close(w->parent, NoLock);
}

/* ---- the chain's head below the executor ----
 *
 * Why not SELECT ... FOR UPDATE SKIP LOCKED and UPDATE through SPI, as the plpgsql path does: those
 * read audit_chain_head in the committing transaction's snapshot. At REPEATABLE READ and SERIALIZABLE
 * that snapshot is the transaction's first, so a head another transaction moved since then cannot be
 * locked or updated ("could not serialize access due to concurrent update"): every audited commit at
 * those levels failed once any audited commit had moved its chain's head since it began, and at
 * SERIALIZABLE the rows read took predicate locks that made unrelated audited transactions conflict.
 * The head is a counter shared by all transactions, as a sequence is, not data the transaction read:
 * like nextval(), it is taken at its latest version whatever the isolation level. So the heads are
 * found with SnapshotSelf (no predicate lock), locked with table_tuple_lock and
 * TUPLE_LOCK_FLAG_FIND_LAST_VERSION (the newest version, following concurrent updates, as
 * READ COMMITTED's FOR UPDATE does), and moved with simple_heap_update, after audit_log's CHECKs
 * (compiled once per relcache version) and with index entries when the update is not HOT. It also
 * saves two executor start-ups per commit (13 % of a two-row transaction's backend time, perf).
 * Anything that needs the executor (a trigger, row security, missing privileges, another shape of
 * the table, the one head of the revisions before 7c3e9a41f0b2) takes the saved statements instead,
 * run with the latest snapshot (spi_latest): right at every level but for a short race at
 * REPEATABLE READ between that snapshot and the lock. */
static int
spi_latest(SPIPlanPtr plan, Datum *args, const char *nulls, long count)
{
	return SPI_execute_snapshot(plan, args, nulls, GetLatestSnapshot(), InvalidSnapshot, false, true, count);
}

static bool
heads_need_executor(Relation rel)
{
	TriggerDesc *t = rel->trigdesc;

	return rel->rd_rel->relkind != RELKIND_RELATION ||
		pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_UPDATE) != ACLCHECK_OK ||
		check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED ||
		(t && (t->trig_update_before_row || t->trig_update_after_row || t->trig_update_instead_row ||
			   t->trig_update_before_statement || t->trig_update_after_statement ||
			   t->trig_update_old_table || t->trig_update_new_table)) ||
		(rel->rd_att->constr && rel->rd_att->constr->has_generated_stored);
}

static void
know_heads(Relation rel)
{
	MemoryContext cxt, old;
	TupleDesc desc = RelationGetDescr(rel);

	if (head_checks_known && head_checks_rel == RelationGetRelid(rel))
		return;
	head_chain = head_next = head_hash = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "chain") == 0 && att->atttypid == INT8OID)
			head_chain = att->attnum;
		else if (strcmp(NameStr(att->attname), "next_id") == 0 && att->atttypid == INT8OID)
			head_next = att->attnum;
		else if (strcmp(NameStr(att->attname), "hash") == 0 && att->atttypid == TEXTOID)
			head_hash = att->attnum;
	}
	if (head_checks_cxt)
		MemoryContextDelete(head_checks_cxt);
	head_checks_cxt = NULL;
	head_checks = NULL;
	/* built under the transaction first: an error half way leaves nothing behind */
	cxt = AllocSetContextCreate(CurTransactionContext, "sovren_audit heads", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	head_checks = compile_checks(rel);
	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, TopMemoryContext);
	head_checks_cxt = cxt;
	head_checks_rel = RelationGetRelid(rel);
	head_checks_known = true;
}

static void
release_head(void)
{
	if (held.rel == NULL)
		return;
	ExecDropSingleTupleTableSlot(held.slot);
	ExecCloseIndices(held.rri);
	FreeExecutorState(held.estate);
	table_close(held.rel, NoLock);	/* the lock is kept to the end of the transaction */
	held.rel = NULL;
}

/* The version of chain k's head that SnapshotSelf sees (the latest committed, or the one a running
 * transaction is replacing), by the primary key: an index fetch also prunes the page, which a
 * sequential scan with a snapshot that is not MVCC does not (the heads' page then fills with dead
 * versions), and takes no predicate lock (SERIALIZABLE), which an MVCC scan would. */
static bool
find_head(Relation rel, Relation index, int k, TupleTableSlot *slot, ItemPointer tid)
{
	ScanKeyData key;
	IndexScanDesc scan;
	bool found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(k));
	scan = index_beginscan(rel, index, SnapshotSelf, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		*tid = slot->tts_tid;
	index_endscan(scan);
	return found;
}

/* Locks a chain's head below the executor: the first of the CHAINS heads no other transaction
 * holds, from `want` on, waiting for `want` only when all are held. False when the heads need the
 * executor (nothing locked then). */
static bool
lock_head(int want, int *chain, int64 *next, char **hash, MemoryContext cxt)
{
	Relation rel;
	Relation index;
	Oid pk;
	TupleTableSlot *slot;
	int found = 0;
	TM_FailureData tmfd;
	TM_Result result = TM_WouldBlock;
	bool isnull;
	Datum v;

	if (stride != CHAINS || !heads_known || !OidIsValid(heads_rel))
		return false;
	rel = table_open(heads_rel, RowExclusiveLock);
	if (!heads_known || heads_need_executor(rel) || !OidIsValid(pk = RelationGetPrimaryKeyIndex(rel)))
	{							/* !heads_known: altered since prepare_plans */
		table_close(rel, NoLock);
		return false;
	}
	know_heads(rel);
	index = index_open(pk, RowExclusiveLock);
	if (head_chain == InvalidAttrNumber || head_next == InvalidAttrNumber || head_hash == InvalidAttrNumber ||
		index->rd_rel->relam != BTREE_AM_OID || index->rd_index->indnkeyatts != 1 ||
		index->rd_index->indkey.values[0] != head_chain || index->rd_opcintype[0] != INT8OID)
	{
		index_close(index, NoLock);
		table_close(rel, NoLock);
		return false;
	}
	slot = table_slot_create(rel, NULL);
	*chain = 0;
	for (int i = 0; i <= CHAINS && *chain == 0; i++)
	{
		int k = i < CHAINS ? (want - 1 + i) % CHAINS + 1 : want;	/* the last round waits */
		ItemPointerData tid;

		if (!find_head(rel, index, k, slot, &tid))
			continue;
		found++;
		result = table_tuple_lock(rel, &tid, SnapshotSelf, slot, GetCurrentCommandId(true), LockTupleExclusive,
								  i < CHAINS ? LockWaitSkip : LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
								  &tmfd);
		if (result == TM_Ok)
			*chain = k;
		else if (result != TM_WouldBlock && result != TM_Deleted)
			break;				/* our own change to the row, or something else: the executor's business */
	}
	index_close(index, NoLock);
	if (*chain == 0 || DatumGetInt64(slot_getattr(slot, head_chain, &isnull)) != *chain)
	{
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, NoLock);
		if (found == 0)
			elog(ERROR, "sovren_audit: audit_chain_head has no row for any chain");
		return false;
	}
	*next = DatumGetInt64(slot_getattr(slot, head_next, &isnull));
	if (isnull)
		elog(ERROR, "sovren_audit: the head of chain %d has no next_id", *chain);
	v = slot_getattr(slot, head_hash, &isnull);
	*hash = isnull ? NULL : MemoryContextStrdup(cxt, TextDatumGetCString(v));
	held.rel = rel;
	held.slot = slot;
	held.estate = CreateExecutorState();
	held.rri = makeNode(ResultRelInfo);
	InitResultRelInfo(held.rri, rel, 0, NULL, 0);
	ExecOpenIndices(held.rri, false);
	held.rri->ri_ConstraintExprs = head_checks;
	return true;
}

/* Moves the held head: its CHECKs, the update, index entries when it is not HOT. */
static void
update_head(int64 next, const char *hash)
{
	TupleDesc desc = RelationGetDescr(held.rel);
	Datum *values = palloc0(desc->natts * sizeof(Datum));
	bool *nulls = palloc0(desc->natts * sizeof(bool));
	bool *replace = palloc0(desc->natts * sizeof(bool));
	bool should_free;
	HeapTuple old = ExecFetchSlotHeapTuple(held.slot, false, &should_free);
	HeapTuple updated;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	values[head_next - 1] = Int64GetDatum(next);
	replace[head_next - 1] = true;
	values[head_hash - 1] = CStringGetTextDatum(hash);
	replace[head_hash - 1] = true;
	updated = heap_modify_tuple(old, desc, values, nulls, replace);
	ExecStoreHeapTuple(updated, slot, false);
	if (desc->constr)
		ExecConstraints(held.rri, slot, held.estate);
	simple_heap_update(held.rel, &old->t_self, updated);
	if (!HeapTupleIsHeapOnly(updated) && held.rri->ri_NumIndices > 0)
	{
		slot->tts_tid = updated->t_self;
		ExecInsertIndexTuples(held.rri, slot, held.estate, true, false, NULL, NIL);
	}
	CommandCounterIncrement();	/* as after any statement: the new version is ours to see */
	ExecDropSingleTupleTableSlot(slot);
	if (should_free)
		heap_freetuple(old);
}

/* The chain's head moves past the last event written, `next` being the chain's next id
 * (append_plan moves it itself) */
static void
move_head(int chain, int64 next, const char *hash)
{
	Datum args[3] = {Int64GetDatum(next), CStringGetTextDatum(hash), Int32GetDatum(chain)};

	if (held.rel)
	{
		update_head(next, hash);
		return;
	}
	if (spi_latest(move_head_plan, args, NULL, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "sovren_audit: moving the head of chain %d to event " INT64_FORMAT " failed", chain,
			 next - stride);
}

static int
compare_dropped(const void *a, const void *b)
{
	int64 x = ((const Dropped *) a)->from, y = ((const Dropped *) b)->from;

	return x < y ? -1 : x > y;
}

/* The dropped ranges in order and without overlaps (a rolled-back savepoint's range holds those of
 * the children that rolled back before it), so that events are checked in one pass. */
static void
merge_dropped(void)
{
	int merged = 0;

	if (n_dropped == 0)
		return;
	qsort(dropped, n_dropped, sizeof(Dropped), compare_dropped);
	for (int d = 1; d < n_dropped; d++)
		if (dropped[d].from <= dropped[merged].to)
			dropped[merged].to = Max(dropped[merged].to, dropped[d].to);
		else
			dropped[++merged] = dropped[d];
	n_dropped = merged + 1;
}

static bool
is_dropped(int64 i, int *cursor)
{
	while (*cursor < n_dropped && dropped[*cursor].to <= i)
		(*cursor)++;
	return *cursor < n_dropped && dropped[*cursor].from <= i;
}

static void
add_to_chunk(Chunk *chunk, TupleTableSlot *slot, char *prev, char *hash, char *payload)
{
	Datum *v = slot->tts_values;
	bool *n = slot->tts_isnull;
	char *user = user_text(v, n);
	int i = chunk->n++;

	chunk->cols[C_TABLE][i] = datumCopy(v[E_TABLE], false, -1);
	chunk->cols[C_ACTION][i] = datumCopy(v[E_ACTION], false, -1);
	chunk->cols[C_USER][i] = user ? CStringGetTextDatum(user) : (Datum) 0;
	chunk->nulls[C_USER][i] = user == NULL;
	chunk->cols[C_AT][i] = v[E_AT];	/* a UTC timestamp is the same instant as a timestamptz */
	chunk->cols[C_QUERY][i] = n[E_QUERY] ? (Datum) 0 : datumCopy(v[E_QUERY], false, -1);
	chunk->nulls[C_QUERY][i] = n[E_QUERY];
	chunk->cols[C_PAYLOAD][i] = CStringGetTextDatum(payload);
	chunk->cols[C_PREV][i] = prev ? CStringGetTextDatum(prev) : (Datum) 0;
	chunk->nulls[C_PREV][i] = prev == NULL;
	chunk->cols[C_HASH][i] = CStringGetTextDatum(hash);
}

/* The head this commit appends to: the first chain no other transaction holds, tried from this
 * backend's own (pid % CHAINS + 1), so that concurrent committers take different heads; only when
 * every head is held does it wait, for its own. Sets the chain, its next id and its hash (or NULL). */
static int
take_head(int64 *next, char **hash, MemoryContext cxt)
{
	Datum want[1] = {Int32GetDatum(MyProcPid % CHAINS + 1)};
	bool isnull;
	int chain;

	if (lock_head(DatumGetInt32(want[0]), &chain, next, hash, cxt))
		return chain;
	if (spi_latest(head_plan, want, NULL, 1) != SPI_OK_SELECT)
		elog(ERROR, "sovren_audit: reading audit_chain_head failed");
	if (SPI_processed == 0 &&
		(spi_latest(wait_plan, want, NULL, 1) != SPI_OK_SELECT || SPI_processed != 1))
		elog(ERROR, "sovren_audit: audit_chain_head has no row for chain %d", DatumGetInt32(want[0]));
	chain = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*next = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*hash = NULL;
	if (SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull), !isnull)
		*hash = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	return chain;
}

static void
chain_events(void)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(event_desc, &TTSOpsMinimalTuple);
	MemoryContext chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "sovren_audit chunk", ALLOCSET_DEFAULT_SIZES);
	const char *actor = GetUserNameFromId(GetSessionUserId(), false);
	TimestampTz at;
	int64 id, first, read;
	int cursor = 0, chain;
	char *head = NULL;
	Chunk chunk = {0};
	RowWriter *writer;
	Datum actor_text;
	char *common;
	pg_cryptohash_ctx *sha;

	chain = take_head(&id, &head, chunk_cxt);	/* id: the chain's next id; ids advance by CHAINS */
	at = GetCurrentTimestamp();	/* read under the lock: created_at grows with event_id in a chain */
	first = id;
	writer = open_writer(chain_nsp, at, n_events);	/* NULL: through the executor, append_plan */
	actor_text = CStringGetTextDatum(actor);
	common = payload_head(at, actor, chain);
	sha = pg_cryptohash_create(PG_SHA256);
	merge_dropped();
	tuplestore_rescan(events);
	for (read = 0; tuplestore_gettupleslot(events, true, false, slot); read++)
	{
		MemoryContext old;
		char *payload, *hash;

		if (is_dropped(read, &cursor))
			continue;
		old = MemoryContextSwitchTo(chunk_cxt);
		if (chunk.n == 0)		/* sized for what is left: an ordinary commit has a few events */
		{
			chunk.cap = Min(n_events - read, CHAIN_CHUNK);
			for (int col = C_TABLE; col <= C_HASH; col++)
			{
				chunk.cols[col] = palloc(chunk.cap * sizeof(Datum));
				chunk.nulls[col] = palloc0(chunk.cap * sizeof(bool));
			}
		}
		slot_getallattrs(slot);
		payload = payload_text(common, slot->tts_values, slot->tts_isnull, head ? head : "");
		hash = event_hash(sha, payload, id);
		id += stride;
		add_to_chunk(&chunk, slot, head, hash, payload);
		head = hash;
		MemoryContextSwitchTo(old);
		if (chunk.n == chunk.cap)
		{
			if (writer)
				write_rows(writer, &chunk, first, at, actor_text);
			else
				append_chunk(&chunk, chain, first, at, actor, head);
			first = id;
			head = MemoryContextStrdup(CurTransactionContext, head);
			MemoryContextReset(chunk_cxt);
			head = MemoryContextStrdup(chunk_cxt, head);
			chunk.n = 0;
		}
	}
	if (read != n_events)		/* never commit with events missing from the chain */
		elog(ERROR, "sovren_audit: read " INT64_FORMAT " of the transaction's " INT64_FORMAT " events back",
			 read, n_events);
	pg_cryptohash_free(sha);
	if (chunk.n > 0 && writer)
		write_rows(writer, &chunk, first, at, actor_text);
	else if (chunk.n > 0)
		append_chunk(&chunk, chain, first, at, actor, head);
	if (writer)
	{
		if (writer->written > 0)
			move_head(chain, id, head);
		close_writer(writer);
	}
	release_head();
	MemoryContextDelete(chunk_cxt);
	ExecDropSingleTupleTableSlot(slot);
}

static void
chain_pending(void)
{
	Oid saved_user;
	int saved_context, level;

	if (events == NULL || n_events == 0)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sovren_audit: SPI_connect failed");
	/* appending is the owner's right alone (part 1 of issue 13): switch as SECURITY DEFINER would */
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(chain_owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	level = pin_search_path();
	PushActiveSnapshot(GetTransactionSnapshot());
	prepare_plans(chain_nsp);
	chain_events();
	PopActiveSnapshot();
	AtEOXact_GUC(true, level);
	SetUserIdAndSecContext(saved_user, saved_context);
	SPI_finish();
	tuplestore_end(events);	/* closes the spill file before the commit checks for leaked files */
	reset_xact();
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			chain_pending();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (events != NULL && n_events > 0)
				ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
								errmsg("cannot PREPARE a transaction with audited changes: the audit trail chains them at COMMIT")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			reset_xact();
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	CacheRegisterRelcacheCallback(forget_relation, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, forget_functions, (Datum) 0);
}
