-- Linked persons with their clear birth year and month and sex (the most common value over their records).
select
    person_id,
    cast(birth_year as integer) as birth_year,
    cast(birth_month as integer) as birth_month,
    case when sex in ('M', 'F') then sex else 'U' end as sex,
    case
        when birth_year is not null then make_date(cast(birth_year as integer), coalesce(cast(birth_month as integer), 7), 1)
    end as born_on,
    first_seen,
    last_seen
from {{ source('linked', 'person') }}
