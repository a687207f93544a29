-- Each product's versions tile time with no gap and no overlap: version n
-- ends exactly where version n+1 starts, the first starts at the floor, the
-- last (and only the last) is current and ends at the ceiling.
with ordered as (
    select
        product_id, version_no, valid_from, valid_to, is_current,
        lead(valid_from) over (partition by product_id order by version_no) as next_from
    from {{ ref('dim_product') }}
)

select *
from ordered
where (next_from is not null and valid_to <> next_from)
   or (next_from is null and (not is_current or valid_to <> '{{ var("scd_ceiling") }}'::timestamptz))
   or (next_from is not null and is_current)
   or (version_no = 1 and valid_from <> '{{ var("scd_floor") }}'::timestamptz)
