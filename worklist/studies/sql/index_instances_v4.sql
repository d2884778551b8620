-- index_instances v4 (migration 0010_orders): over v3, a new study is matched to its
-- trust's RIS order by site and accession number (worklist/orders): the study takes the
-- order's id, its priority (due time recomputed from the row's turnaround_seconds) and,
-- when the order was cancelled before any image came, the status cancelled. New images
-- on a cancelled study leave it cancelled (the images are kept).

-- Names compare as a reader would: case, surrounding spaces and trailing empty
-- components (DOE^JANE^^) do not make a mismatch.
CREATE OR REPLACE FUNCTION patient_name_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT upper(regexp_replace(btrim(name), '[\^ ]+$', ''))
$fn$;

CREATE OR REPLACE FUNCTION index_instances(batch jsonb, at timestamptz) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    r jsonb;
    v_site integer;
    v_patient integer;
    v_study integer;
    v_study_site integer;
    v_series integer;
    v_series_study integer;
    v_new_series boolean;
    v_old_series integer;
    v_old_study integer;
    v_modality text;
    v_changed boolean;
    v_replaced boolean;
    v_name text;
    v_birth_date date;
    v_sex text;
    v_received_name text;
    v_received_birth_date date;
    v_received_sex text;
    v_mismatched text[];
    v_new_study boolean;
    v_order integer;
    v_order_priority study_priority;
    v_order_status text;
    changed_count integer := 0;
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        v_site := (r->>'site_id')::integer;
        v_modality := nullif(r->>'modality', '');
        v_replaced := coalesce((r->>'replaced')::boolean, false);
        v_received_name := coalesce(r->>'patient_name', '');
        v_received_birth_date := (r->>'birth_date')::date;
        v_received_sex := nullif(r->>'sex', '');

        -- The patient row keeps the demographics it has: a study whose instances say
        -- otherwise under the same local ID is flagged below, never silently re-labelled.
        -- Blanks are filled in.
        INSERT INTO patients AS p (site_id, local_id, nhs_number, name, birth_date, sex, updated_at)
        VALUES (v_site, r->>'patient_id', r->>'nhs_number', v_received_name,
                v_received_birth_date, v_received_sex, at)
        ON CONFLICT (site_id, local_id) DO UPDATE SET
            nhs_number = coalesce(excluded.nhs_number, p.nhs_number),
            name = CASE WHEN p.name = '' THEN excluded.name ELSE p.name END,
            birth_date = coalesce(p.birth_date, excluded.birth_date),
            sex = coalesce(p.sex, excluded.sex),
            updated_at = excluded.updated_at
        RETURNING id, name, birth_date, sex INTO v_patient, v_name, v_birth_date, v_sex;

        v_mismatched := '{}';
        IF v_received_name <> '' AND patient_name_key(v_received_name) <> patient_name_key(v_name)
        THEN
            v_mismatched := array_append(v_mismatched, 'name');
        END IF;
        IF v_received_birth_date IS DISTINCT FROM v_birth_date AND v_received_birth_date IS NOT NULL
        THEN
            v_mismatched := array_append(v_mismatched, 'birth_date');
        END IF;
        IF upper(v_received_sex) IS DISTINCT FROM upper(v_sex) AND v_received_sex IS NOT NULL THEN
            v_mismatched := array_append(v_mismatched, 'sex');
        END IF;

        INSERT INTO studies AS s (study_uid, site_id, patient_id, accession_number, description,
                                  study_datetime, modalities, priority, due_at, status,
                                  received_at, last_instance_at, received_patient_name,
                                  received_patient_birth_date, received_patient_sex)
        VALUES (r->>'study_uid', v_site, v_patient, r->>'accession_number',
                r->>'study_description', (r->>'study_datetime')::timestamptz, '{}',
                (r->>'priority')::study_priority, (r->>'due_at')::timestamptz, 'receiving', at, at,
                nullif(v_received_name, ''), v_received_birth_date, v_received_sex)
        ON CONFLICT (study_uid) DO UPDATE SET
            accession_number = coalesce(s.accession_number, excluded.accession_number),
            description = coalesce(s.description, excluded.description),
            study_datetime = coalesce(s.study_datetime, excluded.study_datetime),
            received_patient_name = coalesce(s.received_patient_name,
                                             excluded.received_patient_name),
            received_patient_birth_date = coalesce(s.received_patient_birth_date,
                                                   excluded.received_patient_birth_date),
            received_patient_sex = coalesce(s.received_patient_sex, excluded.received_patient_sex)
        RETURNING id, site_id, (xmax = 0) INTO v_study, v_study_site, v_new_study;
        IF v_study_site <> v_site THEN
            RAISE EXCEPTION 'study % belongs to another site', r->>'study_uid'
                USING ERRCODE = 'WL001';
        END IF;

        -- Whichever comes first: an order that came before the images is matched now.
        IF v_new_study AND nullif(r->>'accession_number', '') IS NOT NULL THEN
            SELECT o.id, o.priority, o.status INTO v_order, v_order_priority, v_order_status
            FROM orders o
            WHERE o.site_id = v_site AND o.accession_number = r->>'accession_number';
            IF NOT FOUND THEN
                -- An order committing meanwhile would not see this study (not committed
                -- yet) nor this query its order: take the accession's lock, which
                -- apply_order holds while it writes (worklist/orders/repository.py), and
                -- look again.
                PERFORM pg_advisory_xact_lock(v_site, hashtext(r->>'accession_number'));
                SELECT o.id, o.priority, o.status INTO v_order, v_order_priority, v_order_status
                FROM orders o
                WHERE o.site_id = v_site AND o.accession_number = r->>'accession_number';
            END IF;
            IF FOUND THEN
                UPDATE studies SET
                    order_id = v_order,
                    priority = coalesce(v_order_priority, priority),
                    due_at = CASE WHEN v_order_priority IS NULL THEN due_at
                                  ELSE received_at + make_interval(secs =>
                                      (r->'turnaround_seconds'->>(v_order_priority::text))
                                          ::double precision)
                             END,
                    status = CASE WHEN v_order_status = 'cancelled'
                                  THEN 'cancelled'::study_status ELSE status END
                WHERE id = v_study;
                INSERT INTO audit_log (actor, actor_kind, action, study_uid, site_id, address,
                                       detail)
                VALUES (r->>'actor', 'node', 'order.matched', r->>'study_uid', v_site,
                        r->>'address', jsonb_build_object('order_id', v_order));
            END IF;
        END IF;

        IF cardinality(v_mismatched) > 0 THEN
            UPDATE studies SET flags = array_append(flags, 'demographic_mismatch')
            WHERE id = v_study AND NOT ('demographic_mismatch' = ANY(flags));
            IF FOUND THEN
                INSERT INTO audit_log (actor, actor_kind, action, study_uid, site_id, address,
                                       detail)
                VALUES (r->>'actor', 'node', 'study.demographic_mismatch',
                        r->>'study_uid', v_site, r->>'address',
                        jsonb_build_object('fields', to_jsonb(v_mismatched)));
            END IF;
        END IF;

        INSERT INTO series AS se (study_id, series_uid, modality, description, number)
        VALUES (v_study, r->>'series_uid', v_modality, r->>'series_description',
                (r->>'series_number')::integer)
        ON CONFLICT (series_uid) DO UPDATE SET
            modality = coalesce(se.modality, excluded.modality),
            description = coalesce(se.description, excluded.description),
            number = coalesce(se.number, excluded.number)
        RETURNING id, study_id, (xmax = 0) INTO v_series, v_series_study, v_new_series;
        IF v_series_study <> v_study THEN
            RAISE EXCEPTION 'series % belongs to another study', r->>'series_uid'
                USING ERRCODE = 'WL002';
        END IF;

        SELECT series_id, study_id INTO v_old_series, v_old_study
        FROM instances WHERE sop_instance_uid = r->>'sop_instance_uid';

        INSERT INTO instances AS i (study_id, series_id, sop_instance_uid, sop_class_uid,
                                    transfer_syntax_uid, instance_number, path, size_bytes,
                                    received_at)
        VALUES (v_study, v_series, r->>'sop_instance_uid', r->>'sop_class_uid',
                r->>'transfer_syntax_uid', (r->>'instance_number')::integer, r->>'path',
                (r->>'size_bytes')::bigint, at)
        ON CONFLICT (sop_instance_uid) DO UPDATE SET
            study_id = excluded.study_id,
            series_id = excluded.series_id,
            sop_class_uid = excluded.sop_class_uid,
            transfer_syntax_uid = excluded.transfer_syntax_uid,
            instance_number = excluded.instance_number,
            path = excluded.path,
            size_bytes = excluded.size_bytes,
            received_at = CASE WHEN r->>'replaced' = 'true' THEN excluded.received_at
                               ELSE i.received_at END;

        IF v_old_series IS NOT NULL AND v_old_series <> v_series THEN
            UPDATE series SET instance_count = instance_count - 1 WHERE id = v_old_series;
            UPDATE studies SET instance_count = instance_count - 1 WHERE id = v_old_study;
        END IF;
        v_changed := v_old_series IS NULL OR v_old_series <> v_series OR v_replaced;
        IF v_old_series IS NULL OR v_old_series <> v_series THEN
            UPDATE series SET instance_count = instance_count + 1 WHERE id = v_series;
        END IF;

        IF v_changed OR v_new_series THEN
            UPDATE studies SET
                instance_count = instance_count
                    + CASE WHEN v_old_series IS NULL OR v_old_series <> v_series THEN 1 ELSE 0 END,
                series_count = series_count + CASE WHEN v_new_series THEN 1 ELSE 0 END,
                modalities = CASE
                    WHEN v_modality IS NULL OR v_modality = ANY(modalities) THEN modalities
                    ELSE ARRAY(SELECT m FROM unnest(array_append(modalities, v_modality)) AS m
                               ORDER BY m)
                END,
                last_instance_at = at,
                -- New images on a reported study bring it back for an addendum.
                status = CASE WHEN status IN ('ready', 'reported') THEN 'receiving'::study_status
                              ELSE status END,
                flags = CASE
                    WHEN status = 'reported' AND NOT ('new_images_after_report' = ANY(flags))
                    THEN array_append(flags, 'new_images_after_report')
                    ELSE flags
                END
            WHERE id = v_study;
        END IF;

        IF v_changed THEN
            changed_count := changed_count + 1;
            INSERT INTO audit_log (actor, actor_kind, action, study_uid, site_id, address, detail)
            VALUES (r->>'actor', 'node',
                    CASE WHEN v_replaced THEN 'instance.replaced' ELSE 'instance.stored' END,
                    r->>'study_uid', v_site, r->>'address',
                    jsonb_build_object('sop_instance_uid', r->>'sop_instance_uid',
                                       'series_uid', r->>'series_uid',
                                       'size_bytes', (r->>'size_bytes')::bigint));
        END IF;
    END LOOP;
    RETURN changed_count;
END
$fn$;
