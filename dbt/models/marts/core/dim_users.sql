-- One row per catalog user, plus the unknown member that facts point at when
-- an event's user_id is not (yet) in the catalog. user_sk = md5(user_id).
select
    {{ sk(['user_id']) }}          as user_sk,
    user_id,
    username,
    email,
    full_name,
    first_name,
    last_name,
    sex,
    age,
    case
        when age is null then 'unknown'
        when age < 25 then '18-24'
        when age < 35 then '25-34'
        when age < 45 then '35-44'
        when age < 55 then '45-54'
        else '55+'
    end                            as age_band,
    country,
    city,
    signup_date,
    'raw.users'                    as source
from {{ ref('stg_users') }}

union all

select
    {{ unknown_sk() }},
    '~unknown', '~unknown', null, 'Unknown user', null, null,
    null, null, 'unknown', null, null, null,
    'unknown member'
