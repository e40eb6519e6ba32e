-- features.child_area: where each child of the mart lives, as far as the warehouse knows now (at the latest
-- extract), for attributing children to areas in published outputs (outputs.community_risk). Not a feature and
-- not point in time: features.child_features keeps the ward and LSOA known at the prediction date, which the
-- model uses; this table may use records from after it (an EYFSP return at five, a record from last month).
-- The area is that of the child's EYFSP return (the school's record of where the child lived when assessed),
-- else of the child's latest record that carries one (current versions only).
with records as (
    select
        person_id,
        ward,
        lsoa,
        event_date,
        arrived_on,
        source = 'school_readiness' as from_school_return
    from {{ ref('int_person_events') }}
    where ward is not null and superseded_on is null
),

latest as (
    select
        children.person_id,
        records.ward,
        records.lsoa,
        records.from_school_return
    from {{ ref('int_child_prediction_dates') }} as children
    inner join records using (person_id)
    qualify row_number() over (
        partition by children.person_id
        order by records.from_school_return desc, records.event_date desc, records.arrived_on desc,
            records.ward, records.lsoa
    ) = 1
)

select
    children.person_id,
    latest.ward,
    latest.lsoa,
    coalesce(latest.from_school_return, false) as from_school_return
from (select distinct person_id from {{ ref('int_child_prediction_dates') }}) as children
left join latest using (person_id)
order by children.person_id
