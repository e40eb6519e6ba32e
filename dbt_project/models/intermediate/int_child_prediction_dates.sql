-- The children of the mart, one row each, at their prediction date: the third birthday, taken as the first
-- day of the birth month three years on (only birth year and month are in clear).
-- Children whose prediction date falls in the data window, and every child with an EYFSP result (even with a
-- prediction date before the data starts: history_months then says how little was known).
with children as (
    select
        person_id,
        birth_year,
        birth_month,
        sex,
        make_date(birth_year + 3, birth_month, 1) as prediction_date
    from {{ ref('stg_person') }}
    where birth_year is not null and birth_month between 1 and 12
),

assessed as (
    select distinct person_id from {{ ref('int_child_assessments') }}
)

select
    children.person_id,
    children.birth_year,
    children.birth_month,
    children.sex,
    children.prediction_date,
    cast(greatest(0, least(
        datediff('month', window_.first_month_start, children.prediction_date),
        datediff('month', window_.first_month_start, window_.data_complete_on)
    )) as integer) as history_months,
    assessed.person_id is not null as has_assessment
from children
cross join {{ ref('int_data_window') }} as window_
left join assessed using (person_id)
where children.prediction_date between window_.first_month_start and window_.data_complete_on
    or assessed.person_id is not null
