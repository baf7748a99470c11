"""MySQL and MariaDB built-in functions that change nothing, for ``@mysql_read_only``.

Names are as pamwire.sql.mysql records them: sqlglot turns some calls into its own
canonical names (``IFNULL`` into ``coalesce``, ``DATE_FORMAT`` into
``time_to_str``), so both spellings are listed where they differ.
"""

from __future__ import annotations

# Aggregates and window functions.
_AGGREGATES = """
avg bit_and bit_or bit_xor count group_concat json_arrayagg json_objectagg max min
std stddev stddev_pop stddev_samp sum var_pop var_samp variance array_agg
cume_dist dense_rank first_value lag last_value lead nth_value ntile percent_rank
rank row_number percentile_cont percentile_disc median
"""

# Strings, numbers, comparisons and control flow.
_SCALARS = """
abs acos ascii asin atan atan2 bin bit_count bit_length ceil ceiling char char_length
character_length chr coalesce concat concat_ws conv cos cot crc32 degrees elt exp
export_set field find_in_set floor format from_base64 greatest hex if ifnull insert
instr interval isnull lcase least left length ln locate log log10 log2 lower lpad
ltrim make_set mid mod nullif oct octet_length ord pi position pow power quote
radians rand regexp regexp_instr regexp_like regexp_replace regexp_substr repeat
replace reverse right round rpad rtrim sign sin soundex space sqrt strcmp
substr substring substring_index tan to_base64 trim truncate ucase unhex upper
weight_string collation charset coercibility cast convert binary nvl nvl2 decode
format_bytes format_pico_time natural_sort_key sformat
"""

# Dates and times (reading the clock writes nothing).
_DATES = """
adddate addtime convert_tz curdate current_date current_time current_timestamp
curtime date date_add date_format date_sub datediff day dayname dayofmonth
dayofweek dayofyear extract from_days from_unixtime get_format hour last_day
localtime localtimestamp makedate maketime microsecond minute month monthname now
period_add period_diff quarter sec_to_time second str_to_date subdate subtime
sysdate time time_format time_to_sec timediff timestamp timestampadd timestampdiff
to_days to_seconds unix_timestamp utc_date utc_time utc_timestamp week weekday
weekofyear year yearweek add_months months_between
"""

# JSON, hashes, identifiers and session information.
_OTHERS = """
json_array json_array_append json_array_insert json_contains json_contains_path
json_depth json_extract json_insert json_keys json_length json_merge
json_merge_patch json_merge_preserve json_object json_overlaps json_pretty
json_quote json_remove json_replace json_schema_valid json_search json_set
json_storage_free json_storage_size json_type json_unquote json_valid json_value
json_compact json_detailed json_loose json_exists json_query json_normalize
json_equals member_of
aes_decrypt aes_encrypt compress uncompress uncompressed_length md5 sha sha1 sha2
random_bytes statement_digest statement_digest_text
uuid uuid_short uuid_to_bin bin_to_uuid is_uuid sys_guid
inet_aton inet_ntoa inet6_aton inet6_ntoa is_ipv4 is_ipv4_compat is_ipv4_mapped
is_ipv6
charset connection_id current_role current_user database found_rows
last_insert_id roles_graphml row_count schema session_user system_user user
version icu_version
st_astext st_aswkt st_asgeojson st_geomfromtext st_x st_y st_distance
st_distance_sphere st_contains st_within st_intersects point
"""

# Canonical names sqlglot gives some of the calls above on the MySQL dialect.
_SQLGLOT_NAMES = """
current_schema current_version day_of_week day_of_month day_of_year week_of_year
j_s_o_n_object j_s_o_n_array j_s_o_n_extract j_s_o_n_extract_scalar
json_extract_scalar json_format json_array_contains
number_to_str pad str_position str_to_time time_to_str time_str_to_time
ts_or_ds_to_date ts_or_ds_to_timestamp ts_or_ds_add unix_to_time unix_to_str
str_to_unix time_to_unix date_diff date_str_to_date date_to_di di_to_date
date_trunc timestamp_trunc timestamp_add timestamp_sub timestamp_diff
time_add time_sub time_diff safe_divide div array_join array_contains
string_to_array split group_concat_ordered regexp_extract regexp_i_like
approx_distinct count_if variance_pop levenshtein initcap unicode
last_day_of_month to_char to_number cast_to_str_type try_cast
sha256 sha512 md5_digest hex_string lower_hex
"""

# Never read-only, whatever the lists above say: they sleep, wait, lock, read
# server files, run programs or advance a sequence.
_NEVER = """
sleep benchmark get_lock release_lock release_all_locks is_free_lock is_used_lock
load_file master_pos_wait source_pos_wait master_gtid_wait wait_for_executed_gtid_set
wait_until_sql_thread_after_gtids sys_exec sys_eval nextval setval lastval next_value
previous_value
"""
NEVER_READ_ONLY: frozenset[str] = frozenset(_NEVER.split())

#: Bare names of side-effect-free MySQL and MariaDB built-ins.
MYSQL_READ_ONLY: frozenset[str] = (
    frozenset((_AGGREGATES + _SCALARS + _DATES + _OTHERS + _SQLGLOT_NAMES).split())
    - NEVER_READ_ONLY
)
