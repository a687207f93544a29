-- One row per catalog user, typed. The e-mail is the catalog's own field
-- (the original system filled it from the username).
select
    user_id,
    username,
    lower(email)          as email,
    full_name,
    first_name,
    last_name,
    sex,
    age::integer          as age,
    country,
    city,
    signup_date::date     as signup_date,
    updated_at::timestamptz as updated_at
from {{ source('raw', 'users') }}
