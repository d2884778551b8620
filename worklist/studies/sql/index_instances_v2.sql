-- index_instances v2 (migration 0002): as v1, and new images on a reported study bring it
-- back to the worklist (receiving) with the flag new_images_after_report.
-- Immutable once released: a change is a new file and a migration that installs it.
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
    changed_count integer := 0;
BEGIN
    FOR r IN SELECT value FROM jsonb_array_elements(batch) LOOP
        v_site := (r->>'site_id')::integer;
        v_modality := nullif(r->>'modality', '');
        v_replaced := coalesce((r->>'replaced')::boolean, false);

        INSERT INTO patients AS p (site_id, local_id, nhs_number, name, birth_date, sex, updated_at)
        VALUES (v_site, r->>'patient_id', r->>'nhs_number', coalesce(r->>'patient_name', ''),
                (r->>'birth_date')::date, r->>'sex', at)
        ON CONFLICT (site_id, local_id) DO UPDATE SET
            nhs_number = coalesce(excluded.nhs_number, p.nhs_number),
            name = CASE WHEN excluded.name = '' THEN p.name ELSE excluded.name END,
            birth_date = coalesce(excluded.birth_date, p.birth_date),
            sex = coalesce(excluded.sex, p.sex),
            updated_at = excluded.updated_at
        RETURNING id INTO v_patient;

        INSERT INTO studies AS s (study_uid, site_id, patient_id, accession_number, description,
                                  study_datetime, modalities, priority, due_at, status,
                                  received_at, last_instance_at)
        VALUES (r->>'study_uid', v_site, v_patient, r->>'accession_number',
                r->>'study_description', (r->>'study_datetime')::timestamptz, '{}',
                (r->>'priority')::study_priority, (r->>'due_at')::timestamptz, 'receiving', at, at)
        ON CONFLICT (study_uid) DO UPDATE SET
            accession_number = coalesce(s.accession_number, excluded.accession_number),
            description = coalesce(s.description, excluded.description),
            study_datetime = coalesce(s.study_datetime, excluded.study_datetime)
        RETURNING id, site_id INTO v_study, v_study_site;
        IF v_study_site <> v_site THEN
            RAISE EXCEPTION 'study % belongs to another site', r->>'study_uid'
                USING ERRCODE = 'WL001';
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
            VALUES (r->>'actor', 'dicom_node',
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
